"""Change points of a metric's history: series built here with known steps, in noise drawn
from seeded generators, so every answer below is fixed."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from labci_server.db.queries.history import MetricSamples
from labci_server.results.changepoints import ChangePointRules, find_change_points

SIGMA = 0.01


def history(values: list[float] | list[tuple[float, ...]]) -> list[MetricSamples]:
    """Runs 1, 2, … oldest first; a tuple is one run's repeats."""
    return [
        MetricSamples(
            run_id=i + 1,
            commit_sha=f"{i + 1:040x}",
            time_s=1_800_000_000.0 + 60 * i,
            values=value if isinstance(value, tuple) else (value,),
        )
        for i, value in enumerate(values)
    ]


def noisy(levels: list[tuple[float, int]], seed: int) -> list[float]:
    """`count` runs at each (level, count), each with Gaussian noise of SIGMA."""
    rng = random.Random(seed)
    return [rng.gauss(level, SIGMA) for level, count in levels for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_a_step_of_three_sigma_is_found_at_its_commit(seed):
    values = noisy([(1.0, 30), (1.0 + 3 * SIGMA, 30)], seed)
    series = history(values)

    found = find_change_points(series)

    assert len(found) == 1
    change = found[0]
    assert abs(change.index - 30) <= 1
    assert change.commit_sha == series[change.index].commit_sha
    assert change.run_id == series[change.index].run_id
    assert change.before_commit_sha == series[change.index - 1].commit_sha
    assert change.before_run_id == series[change.index - 1].run_id
    assert change.time_s == series[change.index].time_s
    assert change.mean_before == pytest.approx(statistics.fmean(values[: change.index]))
    assert change.mean_after == pytest.approx(statistics.fmean(values[change.index :]))
    assert change.relative_change == pytest.approx(
        change.mean_after / change.mean_before - 1, rel=1e-9
    )
    assert change.relative_change == pytest.approx(0.03, abs=0.01)
    assert change.p_value < 1e-4
    assert change.runs_before + change.runs_after == 60
    assert find_change_points(series) == found  # no random numbers anywhere


def test_the_means_are_of_the_segments_each_side():
    values = [1.0, 1.02, 0.98, 1.0, 1.01, 0.99, 2.0, 2.02, 1.98, 2.01]
    series = history(values)

    (change,) = find_change_points(series)

    assert (change.index, change.runs_before, change.runs_after) == (6, 6, 4)
    assert change.mean_before == pytest.approx(1.0)
    assert change.mean_after == pytest.approx(2.0025)
    assert change.relative_change == pytest.approx(1.0025)


def test_flat_noise_rarely_shows_a_change():
    marked = [seed for seed in range(100) if find_change_points(history(noisy([(1.0, 60)], seed)))]

    assert len(marked) <= 2, marked


def test_two_steps_are_both_found():
    series = history(noisy([(1.0, 30), (1.05, 30), (0.98, 30)], seed=7))

    found = find_change_points(series)

    assert [c.index for c in found] in ([29, 60], [30, 60], [31, 60], [30, 59], [30, 61])
    up, down = found
    assert up.mean_before == pytest.approx(1.0, abs=0.01)
    assert up.mean_after == pytest.approx(1.05, abs=0.01)
    assert down.mean_before == pytest.approx(1.05, abs=0.01)  # the segment between them
    assert down.mean_after == pytest.approx(0.98, abs=0.01)
    assert up.relative_change > 0 > down.relative_change


@pytest.mark.parametrize("length", range(6))
def test_a_series_too_short_for_two_segments_has_none(length):
    values = [1.0, 1.0, 1.0, 5.0, 5.0, 5.0][:length]

    assert find_change_points(history(values)) == []


def test_three_runs_each_side_are_enough():
    (change,) = find_change_points(history([1.0, 1.01, 0.99, 5.0, 5.01, 4.99]))

    assert change.index == 3


def test_a_constant_series_has_none():
    assert find_change_points(history([0.93] * 80)) == []


def test_a_deterministic_metric_that_steps_once():
    (change,) = find_change_points(history([120.0] * 20 + [150.0] * 20))

    assert (change.index, change.mean_before, change.mean_after) == (20, 120.0, 150.0)
    assert change.relative_change == pytest.approx(0.25)
    assert change.p_value == 0.0


def test_one_odd_run_at_the_end_is_an_outlier_not_a_new_level():
    values = noisy([(1.0, 40)], seed=3)

    assert find_change_points(history([*values, 1.2])) == []
    assert find_change_points(history([*values, 1.2, 1.0])) == []
    assert [c.index for c in find_change_points(history([*values, 1.2, 1.2, 1.2]))] == [40]


def test_a_significant_but_tiny_shift_is_ignored():
    # 10 sigma, but 0.1 % of the level.
    rng = random.Random(1)
    values = [rng.gauss(10.0 if i < 30 else 10.01, 0.001) for i in range(60)]

    assert find_change_points(history(values)) == []
    found = find_change_points(history(values), ChangePointRules(min_relative_change=0))
    assert [c.index for c in found] == [30]


def test_each_run_counts_once_as_the_mean_of_its_repeats():
    rng = random.Random(5)
    runs = [tuple(rng.gauss(0.9 if i < 25 else 0.8, 0.02) for _ in range(3)) for i in range(50)]

    (change,) = find_change_points(history(runs))

    assert change.index == 25
    assert change.mean_after == pytest.approx(0.8, abs=0.01)
    assert change.relative_change == pytest.approx(-0.111, abs=0.02)


def test_non_finite_runs_are_left_out_and_indices_stay_the_callers():
    values = noisy([(1.0, 20), (2.0, 20)], seed=2)
    values[5] = math.nan
    values[30] = math.inf

    (change,) = find_change_points(history(values))

    assert change.index == 20
    assert (change.runs_before, change.runs_after) == (19, 19)
    assert change.mean_after == pytest.approx(2.0, abs=0.01)


def test_values_near_the_float_limit_do_not_overflow():
    (change,) = find_change_points(history([1e308] * 10 + [-1.2e308] * 10))

    assert (change.index, change.mean_before, change.mean_after) == (10, 1e308, -1.2e308)
    assert change.relative_change == pytest.approx(-2.2)


def test_a_level_of_zero_has_no_relative_change():
    (change,) = find_change_points(history([0.0] * 10 + [0.5] * 10))

    assert change.relative_change is None
    assert change.mean_after == 0.5


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"max_p_value": 0}, "max_p_value must be in (0, 1), got 0"),
        ({"min_segment_runs": 1}, "min_segment_runs must be ≥ 2, got 1"),
        ({"min_relative_change": -0.1}, "min_relative_change must be ≥ 0, got -0.1"),
        ({"window_runs": 5}, "window_runs must hold two segments of min_segment_runs"),
    ],
    ids=["p", "segment", "magnitude", "window"],
)
def test_rules_out_of_range_are_refused(rules, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        ChangePointRules(**rules)
