"""Judge one job's metrics against its baseline, per metric, in a way that survives noise.

Pure: values in, `MetricResult`s out; finding the baseline and the history is the caller's
job. Distributions come from SciPy, never from hand-written formulas.

How a metric is judged (`compare_metric`):
- Non-finite values (NaN, ±inf) are dropped from a side. A side given no values is absent;
  a side given values of which none is finite makes the metric `invalid`.
- Absent in head → `missing` (also when absent in both); absent in base → `new`; both
  whatever the rule says.
- No `compare` rule → `info`: shown with its statistics, never judged, never gating.
- `allowed = rule.tolerance.allowed(base.mean)`. A relative tolerance is a share of
  |base.mean|, so at a zero baseline it allows nothing: any change counts as a change.
  |delta| <= allowed → `unchanged` (with a relative slack of `BOUNDARY_SLACK` for
  floating point: a change written as exactly the tolerance is on the boundary). Otherwise the change is better when the goal is max and
  delta > allowed, or the goal is min and delta < -allowed; else it is worse.
- Noise. With n >= 2 on both sides: Welch's t-test and a 95 % confidence interval of the
  difference with Welch-Satterthwaite degrees of freedom. With a single value on a side:
  the sample std of at least `min_history` earlier base-branch values of the metric serves
  as the noise of every run (standard error sqrt(s²/n_head + s²/n_base), t distribution
  with len(history) - 1 degrees of freedom), and `noise_from_history` is set. When both
  sides (or the history) have zero variance, the difference is exact: p = 0 and the
  interval is (delta, delta) when the means differ, p = 1 and (0, 0) when they agree.
- A change beyond the tolerance is `improved`/`regressed` only when p < alpha; otherwise
  it is `inconclusive`. Without any noise estimate the tolerance alone decides and
  `single_sample` is set: such a verdict is never `inconclusive`, and says so.
- The p-value and interval are reported whenever there is a noise estimate: for `info`
  metrics too, and when the tolerance alone already decided `unchanged`.

Nothing here raises on odd numbers (tiny n, zero variance, values near the float limit):
statistics are computed on values divided by a power of two (exact) so that no
intermediate overflows, and a reported float that is still not representable (the delta
from -1e308 to 1e308) is None. A std too large for a float saturates at the largest
float. The verdict is decided on the scaled values, so it stands even then.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from labci_spec import Compare

Verdict = Literal[
    "improved", "regressed", "unchanged", "inconclusive", "missing", "new", "invalid", "info"
]
# The order of `compare_metrics`: what a reviewer must look at first comes first.
VERDICT_ORDER: tuple[Verdict, ...] = (
    "regressed",
    "inconclusive",
    "improved",
    "missing",
    "new",
    "invalid",
    "unchanged",
    "info",
)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """One side's finite samples: std is the sample std (ddof=1), 0.0 for a single value."""

    n: int
    mean: float
    std: float


@dataclass(frozen=True, kw_only=True)
class MetricResult:
    """One metric of a job against its baseline, as the PR table and the gate need it.

    `goal` is None (and `gate` False) when no `compare` rule covers the metric. `delta` is
    head.mean - base.mean; `delta_pct` is relative to |base.mean| and None at a zero
    baseline; `ci95` is the 95 % interval of the difference. Floats are finite or None.
    Keyword-only: twelve fields are too many to pass by position without mixing them up.
    """

    name: str
    goal: Literal["max", "min"] | None
    gate: bool
    base: Summary | None
    head: Summary | None
    delta: float | None = None
    delta_pct: float | None = None
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    verdict: Verdict
    single_sample: bool = False
    noise_from_history: bool = False


@dataclass(frozen=True)
class _Evidence:
    """The difference in units of `scale`; `half_width` and `p_value` are None without noise."""

    scale: float
    delta: float
    base_mean: float
    half_width: float | None
    p_value: float | None
    from_history: bool


def compare_metric(
    name: str,
    base: Sequence[float],
    head: Sequence[float],
    rule: Compare | None,
    *,
    history: Sequence[float] = (),
    alpha: float = 0.05,
    min_history: int = 5,
) -> MetricResult:
    """Judge one metric: `base` and `head` are its samples (one per seed), `history` the
    values of earlier runs on the base branch, used only when a side has a single value."""
    base_values, head_values = _finite(base), _finite(head)
    base_summary, head_summary = _summarize(base_values), _summarize(head_values)
    goal = rule.goal if rule is not None else None
    gate = rule.gate if rule is not None else False
    absent = _absence(base, head, base_values, head_values)
    if absent is not None or base_summary is None or head_summary is None:
        return MetricResult(
            name=name, goal=goal, gate=gate, base=base_summary, head=head_summary,
            verdict=absent or "invalid",
        )  # fmt: skip
    evidence = _evidence(base_values, head_values, _finite(history), min_history)
    verdict: Verdict = "info"
    if rule is not None:
        verdict = _judge(evidence, rule, base_summary.mean, alpha)
    return MetricResult(
        name=name,
        goal=goal,
        gate=gate,
        base=base_summary,
        head=head_summary,
        delta=_unscaled(evidence.delta, evidence.scale),
        delta_pct=_percent(evidence.delta, evidence.base_mean),
        ci95=_interval(evidence),
        p_value=evidence.p_value,
        verdict=verdict,
        single_sample=evidence.half_width is None,
        noise_from_history=evidence.from_history,
    )


def compare_metrics(
    base: Mapping[str, Sequence[float]],
    head: Mapping[str, Sequence[float]],
    rules: Mapping[str, Compare],
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    alpha: float = 0.05,
) -> list[MetricResult]:
    """Judge every metric either side reported, worst first (`VERDICT_ORDER`, then name)."""
    history = history or {}
    results = [
        compare_metric(
            name,
            base.get(name, ()),
            head.get(name, ()),
            rules.get(name),
            history=history.get(name, ()),
            alpha=alpha,
        )
        for name in set(base) | set(head)
    ]
    return sorted(results, key=lambda r: (VERDICT_ORDER.index(r.verdict), r.name))


def regressions(results: Sequence[MetricResult]) -> list[MetricResult]:
    """The results that fail the commit status: regressed, on a metric with `gate: true`."""
    return [r for r in results if r.verdict == "regressed" and r.gate]


def _finite(values: Sequence[float]) -> list[float]:
    kept: list[float] = []
    for value in values:
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range
            continue
        if math.isfinite(number):
            kept.append(number)
    return kept


def _absence(
    base: Sequence[float], head: Sequence[float], base_values: list[float], head_values: list[float]
) -> Verdict | None:
    if (len(base) > 0 and not base_values) or (len(head) > 0 and not head_values):
        return "invalid"
    if not head_values:
        return "missing"  # also when the base has none either: the head shows nothing
    if not base_values:
        return "new"
    return None


def _scale_of(values: Sequence[float]) -> float:
    """A power of two near max |value|: dividing by it is exact and keeps values below 2."""
    largest = max((abs(v) for v in values), default=0.0)
    if largest == 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)


def _summarize(values: list[float]) -> Summary | None:
    if not values:
        return None
    scale = _scale_of(values)
    scaled = [v / scale for v in values]
    std = statistics.stdev(scaled) * scale if len(values) > 1 else 0.0
    mean = statistics.mean(scaled) * scale  # exact: identical samples keep std 0.0
    return Summary(n=len(values), mean=mean, std=min(std, sys.float_info.max))


def _evidence(
    base: list[float], head: list[float], history: list[float], min_history: int
) -> _Evidence:
    scale = _scale_of([*base, *head])
    base_scaled, head_scaled = [v / scale for v in base], [v / scale for v in head]
    base_mean = statistics.mean(base_scaled)
    delta = statistics.mean(head_scaled) - base_mean
    noise: tuple[float | None, float | None] = (None, None)
    from_history = False
    if len(base) >= 2 and len(head) >= 2:
        noise = _welch(head_scaled, base_scaled)
    elif len(history) >= max(min_history, 2):
        noise = _history_test(delta, history, scale, len(head), len(base))
        from_history = True
    p_value, half_width = noise
    return _Evidence(scale, delta, base_mean, half_width, p_value, from_history)


def _welch(head: list[float], base: list[float]) -> tuple[float | None, float | None]:
    """Welch's t-test and the half-width of its interval, on values scaled below 2.

    `ttest_ind_from_stats` is Welch's test from the summaries `ttest_ind` would compute; it
    is used because `ttest_ind` warns on a constant side (deterministic seeds are common).
    """
    n_head, n_base = len(head), len(base)
    mean_head, mean_base = statistics.mean(head), statistics.mean(base)
    var_head, var_base = statistics.variance(head), statistics.variance(base)
    a, b = var_head / n_head, var_base / n_base
    denominator = a * a / (n_head - 1) + b * b / (n_base - 1)
    if denominator == 0.0:  # no noise a float can hold: the difference is exact
        return _exact(mean_head - mean_base)
    result = stats.ttest_ind_from_stats(
        mean_head, math.sqrt(var_head), n_head,
        mean_base, math.sqrt(var_base), n_base,
        equal_var=False,
    )  # fmt: skip
    df = (a + b) ** 2 / denominator  # Welch-Satterthwaite
    half_width = float(stats.t.ppf((1 + CONFIDENCE) / 2, df)) * math.sqrt(a + b)
    return _finite_or_none(float(result.pvalue)), half_width


def _history_test(
    delta: float, history: list[float], scale: float, n_head: int, n_base: int
) -> tuple[float | None, float | None]:
    """Test `delta` against the spread of earlier runs, taken as every run's noise."""
    own_scale = _scale_of(history)
    std = statistics.stdev([v / own_scale for v in history])
    if std == 0.0:
        return _exact(delta)
    noise = std * (own_scale / scale)  # inf when the history dwarfs these values
    standard_error = noise * math.sqrt(1 / n_head + 1 / n_base)
    if standard_error == 0.0:
        return _exact(delta)
    df = len(history) - 1
    p_value = float(2 * stats.t.sf(abs(delta / standard_error), df))
    half_width = float(stats.t.ppf((1 + CONFIDENCE) / 2, df)) * standard_error
    return _finite_or_none(p_value), half_width


def _exact(delta: float) -> tuple[float, float]:
    return (0.0 if delta != 0.0 else 1.0), 0.0


# Floating point: 0.912 - 0.902 is 0.010000000000000009, so a change written as exactly
# the tolerance would be "beyond" it. Differences within this share of the values' size
# count as on the boundary (unchanged), far above rounding error yet far below any noise.
BOUNDARY_SLACK = 1e-9


def _judge(evidence: _Evidence, rule: Compare, base_mean: float, alpha: float) -> Verdict:
    allowed = rule.tolerance.allowed(base_mean) / evidence.scale
    delta = evidence.delta
    head_mean = evidence.base_mean + delta
    size = max(abs(evidence.base_mean), abs(head_mean), allowed)
    allowed += BOUNDARY_SLACK * size
    if abs(delta) <= allowed:
        return "unchanged"
    tested = evidence.half_width is not None
    if tested and not (evidence.p_value is not None and evidence.p_value < alpha):
        return "inconclusive"
    better = delta > allowed if rule.goal == "max" else delta < -allowed
    return "improved" if better else "regressed"


def _unscaled(value: float, scale: float) -> float | None:
    return _finite_or_none(value * scale)


def _percent(delta: float, base_mean: float) -> float | None:
    if base_mean == 0.0:
        return None
    return _finite_or_none(delta / abs(base_mean) * 100)


def _interval(evidence: _Evidence) -> tuple[float, float] | None:
    if evidence.half_width is None:
        return None
    low = _unscaled(evidence.delta - evidence.half_width, evidence.scale)
    high = _unscaled(evidence.delta + evidence.half_width, evidence.scale)
    return None if low is None or high is None else (low, high)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
