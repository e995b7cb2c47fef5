"""Change points: where a metric's level along a branch moved and stayed moved.

Pure: a series in (one point per run, oldest first), `ChangePoint`s out; reading the history
is the caller's job. Each point counts once, as the mean of its repeats; a run with more
seeds is not weighted more, because on a branch the run-to-run spread (data order, kernels,
machines) is usually what the seeds do not average away.

The method is Apache Otava's (formerly Hunter, Fleming et al. 2023, "Hunter: Using Change
Point Detection to Hunt for Performance Regressions"): E-divisive means (Matteson and
James) proposes splits in windows of the series, and Student's t-test between the two
segments on either side of a split decides which ones stay, weakest first. Unlike the
original E-divisive, whose permutation test draws random numbers, every step is
deterministic: the same series always gives the same change points, in tests and on a
README alike.

Library choice (issue 11, item 7): `apache-otava` over MongoDB's
`signal-processing-algorithms`. The latter declares Python < 3.12 and numpy < 2 (labci
supports 3.11 and newer) and seeds its permutation test through numpy's global random state,
which a threaded server cannot do safely; it returns split indices without their
statistics. Otava gives each change point its p-value and the segments' means, accepts a
minimum relative magnitude, and takes 3 ms for 200 points. Its cost is weight: the package
also carries its command line's BigQuery, PostgreSQL and Slack clients (`otava.analysis`
imports only numpy and SciPy), and pins numpy 2.2 and SciPy 1.16 below Python 3.14.

Rules (`ChangePointRules`, defaults chosen for README charts of 30-200 runs):
- A change point needs `min_segment_runs` (3) runs on each side: one odd run is an outlier,
  not a new level; a shift that just landed shows once it has held for three runs.
- `max_p_value` 1e-4: on flat noise, Otava's default of 1e-3 marks a change in 5 % of
  60-run series and 12 % of 200-run ones; 1e-4 marks one in under 0.5 % and 1.5 %. A step
  of 3 sigma is still found in 3 of 4 series once it has held for 3 runs, and in 97 % after
  5. The split is the best of many, so the p-value ranks and thresholds; it is not a
  calibrated probability.
- `min_relative_change` 0.5 %: a shift smaller than that relative to the level is ignored
  even when it is significant (a metric so steady that its last digits are signal).
- Fewer than 2 x `min_segment_runs` finite points, or a constant series, has none.

Non-finite values are left out (the history never stores them; a chart does not draw them).
Values are divided by a power of two (exact) first, so that distances between values near
the float limit do not overflow.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from otava.analysis import TTestSignificanceTester, compute_change_points, merge


class SeriesPoint(Protocol):
    """One run's value of the metric (`db.queries.history.MetricSamples` is one)."""

    @property
    def run_id(self) -> int: ...
    @property
    def commit_sha(self) -> str: ...
    @property
    def time_s(self) -> float: ...
    @property
    def mean(self) -> float: ...


@dataclass(frozen=True)
class ChangePointRules:
    """When a split of the series counts as a change point; see the module docstring."""

    max_p_value: float = 1e-4
    min_segment_runs: int = 3
    min_relative_change: float = 0.005
    window_runs: int = 50  # Otava's window: splits are first proposed within this many runs

    def __post_init__(self) -> None:
        if not 0 < self.max_p_value < 1:
            raise ValueError(f"max_p_value must be in (0, 1), got {self.max_p_value}")
        if self.min_segment_runs < 2:
            raise ValueError(f"min_segment_runs must be ≥ 2, got {self.min_segment_runs}")
        if self.min_relative_change < 0:
            raise ValueError(f"min_relative_change must be ≥ 0, got {self.min_relative_change}")
        if self.window_runs < 2 * self.min_segment_runs:
            raise ValueError("window_runs must hold two segments of min_segment_runs")


DEFAULT_RULES = ChangePointRules()


@dataclass(frozen=True)
class ChangePoint:
    """Where a new level starts: `run_id`/`commit_sha` is its first run, `before_*` the last
    run at the old level. Between those two measured commits lies the commit that changed
    the metric, which is what a bisection searches.

    The means are over the segments on either side, each reaching to the neighbouring
    change point (or the series' end); `relative_change` is (after − before) / |before|,
    None when the level before is 0.
    """

    index: int  # position of `run_id` in the series given, oldest first
    run_id: int
    commit_sha: str
    time_s: float
    before_run_id: int
    before_commit_sha: str
    before_time_s: float
    mean_before: float
    mean_after: float
    relative_change: float | None
    p_value: float
    runs_before: int
    runs_after: int


def find_change_points(
    points: Sequence[SeriesPoint], rules: ChangePointRules = DEFAULT_RULES
) -> list[ChangePoint]:
    """The series' change points, oldest first; [] when it is too short or constant."""
    kept = [(position, p) for position, p in enumerate(points) if math.isfinite(p.mean)]
    values = [p.mean for _, p in kept]
    if len(values) < 2 * rules.min_segment_runs or min(values) == max(values):
        return []
    exponent = _exponent(values)
    scaled = np.array([math.ldexp(v, -exponent) for v in values], dtype=np.float64)
    with np.errstate(all="ignore"):  # a zero-variance segment makes the t statistic inf
        found, _weak = compute_change_points(
            scaled.tolist(),
            window_len=rules.window_runs,
            max_pvalue=rules.max_p_value,
            min_magnitude=rules.min_relative_change,
        )
        found = _without_short_segments(list(found), scaled, rules)
    indices = [int(cp.index) for cp in found]
    p_values = [float(cp.stats.pvalue) for cp in found]
    return _described(kept, scaled.tolist(), exponent, list(zip(indices, p_values, strict=True)))


def _exponent(values: list[float]) -> int:
    """The power of two that brings the largest magnitude within [0.5, 1)."""
    _mantissa, exponent = math.frexp(max(abs(v) for v in values))
    return exponent


def _without_short_segments(
    found: list[Any], series: np.ndarray[Any, np.dtype[np.float64]], rules: ChangePointRules
) -> list[Any]:
    """Drop change points next to a segment shorter than `min_segment_runs`, the least
    significant first, and re-test the rest (Otava's merge step) after each drop."""
    tester = TTestSignificanceTester(rules.max_p_value)
    while True:
        bounds = [0, *(int(cp.index) for cp in found), len(series)]
        short = [
            i
            for i in range(len(found))
            if min(bounds[i + 1] - bounds[i], bounds[i + 2] - bounds[i + 1])
            < rules.min_segment_runs
        ]
        if not short:
            return found
        del found[max(short, key=lambda i: float(found[i].stats.pvalue))]
        intervals = tester.get_intervals(found)
        found = [tester.change_point(cp.to_candidate(), series, intervals) for cp in found]
        found = merge(found, series, rules.max_p_value, rules.min_relative_change)


def _described(
    kept: list[tuple[int, SeriesPoint]],
    scaled: list[float],
    exponent: int,
    splits: list[tuple[int, float]],
) -> list[ChangePoint]:
    """Change points from (split index, p-value) pairs; means are taken of the scaled values
    and scaled back, so that they cannot overflow."""
    bounds = [0, *(index for index, _ in splits), len(scaled)]
    described = []
    for i, (index, p_value) in enumerate(splits):
        before = scaled[bounds[i] : index]
        after = scaled[index : bounds[i + 2]]
        scaled_before, scaled_after = statistics.fmean(before), statistics.fmean(after)
        (position, first), (_, last) = kept[index], kept[index - 1]
        described.append(
            ChangePoint(
                index=position,
                run_id=first.run_id,
                commit_sha=first.commit_sha,
                time_s=first.time_s,
                before_run_id=last.run_id,
                before_commit_sha=last.commit_sha,
                before_time_s=last.time_s,
                mean_before=math.ldexp(scaled_before, exponent),
                mean_after=math.ldexp(scaled_after, exponent),
                relative_change=_relative(scaled_before, scaled_after),
                p_value=p_value,
                runs_before=len(before),
                runs_after=len(after),
            )
        )
    return described


def _relative(before: float, after: float) -> float | None:
    if before == 0:
        return None
    change = (after - before) / abs(before)  # of scaled values: |after - before| ≤ 2
    return change if math.isfinite(change) else None
