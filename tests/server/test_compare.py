"""The per-metric comparison: constructed samples with known answers, checked against SciPy.

The expected p-values and intervals are computed here independently, from the raw samples
with `scipy.stats.ttest_ind`, or from the history formula written out in the test.
"""

from __future__ import annotations

import math
import random
import statistics
import warnings
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from labci_server.results.compare import (
    MetricResult,
    Summary,
    Verdict,
    compare_metric,
    compare_metrics,
    regressions,
)
from labci_spec import Compare

NAN, INF = math.nan, math.inf


def rule(goal: str = "max", tolerance: float | str = 0.01, gate: bool = True) -> Compare:
    """A rule as a workflow file spells it: `tolerance: 0.01` or `tolerance: 2%`."""
    return Compare.model_validate({"goal": goal, "tolerance": tolerance, "gate": gate})


def fields_of(summary: Summary | None) -> tuple[object, ...] | None:
    """A summary as a tuple, so that its floats can be compared with `pytest.approx`."""
    return None if summary is None else (summary.n, summary.mean, summary.std)


# (base, head, rule, verdict) — the verdict alone, for the cases where it is the whole answer.
VERDICTS = [
    pytest.param([0.80, 0.81, 0.79], [0.80, 0.81, 0.79], rule(), "unchanged", id="identical"),
    pytest.param(
        [0.80, 0.81, 0.79, 0.80, 0.80], [0.85, 0.86, 0.84, 0.85, 0.86], rule(), "improved",
        id="improved-5-seeds",
    ),
    pytest.param([0.85, 0.86, 0.84], [0.80, 0.81, 0.79], rule(), "regressed", id="regressed-3-seeds"),
    pytest.param([0.80, 0.70, 0.90], [0.79, 0.92, 0.69], rule(), "unchanged", id="same-mean-noisy"),
    pytest.param([0.70, 0.90, 0.80], [0.75, 0.95, 0.87], rule(), "inconclusive", id="beyond-tol-noisy"),
    pytest.param([0.30, 0.31, 0.29], [0.25, 0.26, 0.24], rule("min"), "improved", id="min-lower-is-better"),
    pytest.param([0.30, 0.31, 0.29], [0.25, 0.26, 0.24], rule("max"), "regressed", id="max-lower-is-worse"),
    pytest.param([0.30, 0.31, 0.29], [0.35, 0.36, 0.34], rule("min"), "regressed", id="min-higher-is-worse"),
    pytest.param([0.80, 0.81], [0.805, 0.815], rule(tolerance=0.01), "unchanged", id="within-abs-tol"),
    pytest.param([0.50], [0.505], rule(tolerance="2%"), "unchanged", id="rel-2pct-within"),
    pytest.param([0.50], [0.52], rule(tolerance="2%"), "improved", id="rel-2pct-beyond-max"),
    pytest.param([0.50], [0.52], rule("min", "2%"), "regressed", id="rel-2pct-beyond-min"),
    pytest.param([0.50], [0.495], rule("min", "2%"), "unchanged", id="rel-2pct-within-down"),
    pytest.param([0.0], [0.001], rule(tolerance="2%"), "improved", id="rel-zero-base-any-change"),
    pytest.param([0.0], [-0.001], rule(tolerance="2%"), "regressed", id="rel-zero-base-down"),
    pytest.param([0.0], [0.0], rule(tolerance="2%"), "unchanged", id="rel-zero-base-no-change"),
    pytest.param([0.0, 0.0, 0.0], [1e-3, 2e-3, 1.5e-3], rule(tolerance="2%"), "improved", id="rel-zero-base-repeats"),
    pytest.param([0.9], [], rule(), "missing", id="missing"),
    pytest.param([0.9], [], None, "missing", id="missing-without-rule"),
    pytest.param([], [0.9], rule(), "new", id="new"),
    pytest.param([], [0.9], None, "new", id="new-without-rule"),
    pytest.param([], [], rule(), "missing", id="absent-both"),
    pytest.param([0.8], [0.9], None, "info", id="no-rule-info"),
    pytest.param([0.80, NAN], [NAN, NAN], rule(), "invalid", id="head-all-nan"),
    pytest.param([INF, -INF], [0.9], rule(), "invalid", id="base-all-inf"),
    pytest.param([], [NAN], rule(), "invalid", id="only-nan-new"),
    pytest.param([0.9], [10**400], rule(), "invalid", id="int-beyond-float"),
    pytest.param([-1.7e308], [1.7e308], rule(), "improved", id="huge-opposite"),
    # A change of exactly the tolerance is unchanged, though 0.912 - 0.902 is
    # 0.010000000000000009 in floating point; one a hair beyond it is not.
    pytest.param([0.912], [0.902], rule(tolerance=0.01), "unchanged", id="float-boundary-down"),
    pytest.param([0.902], [0.912], rule("min", 0.01), "unchanged", id="float-boundary-up"),
    pytest.param([0.7], [0.77], rule(tolerance="10%"), "unchanged", id="float-boundary-rel"),
    pytest.param([0.912], [0.9019999], rule(tolerance=0.01), "regressed", id="just-beyond-boundary"),
    pytest.param([1e6], [1e6 + 0.5], rule(tolerance=0.5), "unchanged", id="boundary-large-values"),
    pytest.param([1e6], [1e6 + 0.51], rule(tolerance=0.5), "improved", id="beyond-large-values"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "head", "compare", "verdict"), VERDICTS)
def test_verdict(
    base: list[float], head: list[float], compare: Compare | None, verdict: Verdict
) -> None:
    assert compare_metric("m", base, head, compare).verdict == verdict


# Welch's test on repeats: (base, head, rule, verdict); p and CI must match SciPy's own
# `ttest_ind` on the raw samples.
WELCH = [
    pytest.param([0.80, 0.81, 0.79, 0.80, 0.80], [0.85, 0.86, 0.84, 0.85, 0.86], rule(), "improved", id="improved-5"),
    pytest.param([0.90, 0.91, 0.92, 0.90], [0.86, 0.85, 0.87, 0.86], rule(), "regressed", id="regressed-4"),
    pytest.param([0.231, 0.229, 0.233], [0.251, 0.249, 0.255], rule("min", 0.005), "regressed", id="loss-regressed-3"),
    pytest.param([0.70, 0.90, 0.80], [0.75, 0.95, 0.87], rule(), "inconclusive", id="inconclusive-3"),
    pytest.param([0.80, 0.70, 0.90], [0.79, 0.92, 0.69], rule(), "unchanged", id="same-mean-noisy"),
    pytest.param([0.80, 0.80, 0.80], [0.85, 0.86, 0.84], rule(), "improved", id="constant-base"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "head", "compare", "verdict"), WELCH)
def test_welch_matches_scipy(
    base: list[float], head: list[float], compare: Compare, verdict: Verdict
) -> None:
    with warnings.catch_warnings():  # ttest_ind warns on a constant side; the module does not
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ttest_ind(head, base, equal_var=False)
        low, high = expected.confidence_interval(0.95)

    result = compare_metric("m", base, head, compare)

    assert result.verdict == verdict
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert result.ci95 == pytest.approx((float(low), float(high)), rel=1e-9)
    assert result.delta == pytest.approx(statistics.mean(head) - statistics.mean(base))
    assert (result.single_sample, result.noise_from_history) == (False, False)
    if verdict == "inconclusive":
        assert result.p_value is not None
        assert result.p_value >= 0.05


def test_summaries_are_mean_sample_std_and_n() -> None:
    result = compare_metric("acc", [0.80, NAN, 0.82, INF, 0.84], [0.9], rule())

    assert fields_of(result.base) == (3, pytest.approx(0.82), pytest.approx(0.02))
    assert result.head == Summary(n=1, mean=0.9, std=0.0)
    assert result.delta_pct == pytest.approx(0.08 / 0.82 * 100)


@pytest.mark.parametrize(
    ("base", "head", "n_base", "n_head"),
    [
        pytest.param([0.80, NAN, 0.81, 0.79], [0.9, 0.91, 0.89], 3, 3, id="nan-in-base"),
        pytest.param([0.80, 0.81, 0.79], [INF, 0.9, -INF, 0.91, 0.89], 3, 3, id="inf-in-head"),
        pytest.param([NAN, 0.80], [0.9, INF], 1, 1, id="down-to-one-each"),
    ],
)
def test_non_finite_values_are_dropped(
    base: list[float], head: list[float], n_base: int, n_head: int
) -> None:
    result = compare_metric("acc", base, head, rule())

    assert (result.base and result.base.n, result.head and result.head.n) == (n_base, n_head)
    assert result.verdict == "improved"


def test_confidence_interval_contains_true_difference() -> None:
    draw = random.Random(7)
    base = [draw.gauss(0.80, 0.01) for _ in range(5)]
    head = [draw.gauss(0.83, 0.01) for _ in range(5)]

    result = compare_metric("acc", base, head, rule())

    assert result.ci95 is not None
    assert result.ci95[0] < 0.03 < result.ci95[1]


def test_confidence_interval_covers_about_95_percent() -> None:
    draw, true_difference, covered = random.Random(11), 0.02, 0
    for _ in range(1000):
        base = [draw.gauss(0.5, 0.01) for _ in range(5)]
        head = [draw.gauss(0.5 + true_difference, 0.02) for _ in range(5)]
        ci95 = compare_metric("m", base, head, rule()).ci95
        assert ci95 is not None
        covered += ci95[0] <= true_difference <= ci95[1]

    # 1000 draws: the coverage's standard error is 0.7 points, so 93-97 % is ±3 of them.
    assert 0.93 <= covered / 1000 <= 0.97


# Tiny n: (base, head, history, verdict, single_sample, noise_from_history)
HISTORY = [0.80, 0.81, 0.79, 0.80, 0.82, 0.78]
TINY = [
    pytest.param([0.80], [0.85], (), "improved", True, False, id="1v1"),
    pytest.param([0.80], [0.805], (), "unchanged", True, False, id="1v1-within-tol"),
    pytest.param([0.80], [0.85, 0.86, 0.84], (), "improved", True, False, id="1v3-no-history"),
    pytest.param([0.80], [0.85, 0.86, 0.84], HISTORY[:4], "improved", True, False, id="1v3-short-history"),
    pytest.param([0.80], [0.85, 0.86, 0.84], [*HISTORY[:4], NAN, INF], "improved", True, False, id="history-nan-dropped"),
    pytest.param([0.80], [0.85, 0.86, 0.84], HISTORY, "improved", False, True, id="1v3-history-6"),
    pytest.param([0.80], [0.88], HISTORY, "improved", False, True, id="1v1-history-6"),
    pytest.param([0.80], [0.85], HISTORY, "inconclusive", False, True, id="1v1-history-p-0.054"),
    pytest.param([0.80, 0.82], [0.88], HISTORY, "improved", False, True, id="2v1-history-6"),
    pytest.param([0.80], [0.82], [0.7, 0.9, 0.8, 0.75, 0.85, 0.8], "inconclusive", False, True, id="noisy-history"),
    pytest.param([0.80, 0.81, 0.79], [0.85, 0.86, 0.84], HISTORY, "improved", False, False, id="repeats-ignore-history"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "head", "history", "verdict", "single_sample", "noise_from_history"), TINY
)
def test_tiny_samples(
    base: list[float],
    head: list[float],
    history: list[float],
    verdict: Verdict,
    single_sample: bool,
    noise_from_history: bool,
) -> None:
    result = compare_metric("acc", base, head, rule(), history=history)

    assert result.verdict == verdict
    assert (result.single_sample, result.noise_from_history) == (single_sample, noise_from_history)
    if single_sample:
        assert (result.p_value, result.ci95) == (None, None)


@pytest.mark.parametrize(
    ("base", "head", "history"),
    [
        pytest.param([0.80], [0.85, 0.86, 0.84], HISTORY, id="1v3"),
        pytest.param([0.80], [0.82], [0.7, 0.9, 0.8, 0.75, 0.85, 0.8], id="1v1-noisy"),
        pytest.param([0.80, 0.82], [0.79], HISTORY + [0.8, 0.81], id="2v1-8-history"),
    ],
)
def test_history_noise_known_answer(
    base: list[float], head: list[float], history: list[float]
) -> None:
    delta = statistics.mean(head) - statistics.mean(base)
    standard_error = statistics.stdev(history) * math.sqrt(1 / len(head) + 1 / len(base))
    df = len(history) - 1
    half_width = stats.t.ppf(0.975, df) * standard_error

    result = compare_metric("acc", base, head, rule(), history=history)

    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(delta) / standard_error, df))
    assert result.ci95 == pytest.approx((delta - half_width, delta + half_width))


# Zero variance: (base, head, history, verdict, p_value, ci95 as offsets from delta)
ZERO_VARIANCE = [
    pytest.param([0.5] * 3, [0.5] * 3, (), "unchanged", 1.0, id="both-constant-equal"),
    pytest.param([0.1] * 3, [0.2] * 3, (), "improved", 0.0, id="both-constant-different"),
    pytest.param([0.2] * 2, [0.1] * 4, (), "regressed", 0.0, id="constant-different-n"),
    pytest.param([0.1], [0.2], [0.3] * 5, "improved", 0.0, id="constant-history"),
    pytest.param([0.1], [0.1], [0.3] * 5, "unchanged", 1.0, id="constant-history-equal"),
]


@pytest.mark.parametrize(("base", "head", "history", "verdict", "p_value"), ZERO_VARIANCE)
def test_zero_variance_is_exact(
    base: list[float], head: list[float], history: list[float], verdict: Verdict, p_value: float
) -> None:
    result = compare_metric("acc", base, head, rule(), history=history)

    assert (result.verdict, result.p_value) == (verdict, p_value)
    assert result.delta is not None
    assert result.ci95 == (result.delta, result.delta)


@pytest.mark.parametrize(
    ("base", "head", "delta_pct"),
    [
        pytest.param([0.50], [0.52], 4.0, id="positive-base"),
        pytest.param([-2.0], [-1.0], 50.0, id="negative-base-uses-abs"),
        pytest.param([0.0], [0.001], None, id="zero-base"),
    ],
)
def test_delta_pct(base: list[float], head: list[float], delta_pct: float | None) -> None:
    result = compare_metric("m", base, head, rule(tolerance="2%"))

    assert result.delta_pct == (pytest.approx(delta_pct) if delta_pct is not None else None)


def test_missing_and_new_keep_the_side_they_have() -> None:
    missing = compare_metric("acc", [0.90, 0.92], [], rule())
    new = compare_metric("acc", [], [0.9], rule())

    assert fields_of(missing.base) == (2, pytest.approx(0.91), pytest.approx(0.02 / 2**0.5))
    assert new.head == Summary(n=1, mean=0.9, std=0.0)
    assert (missing.head, new.base) == (None, None)
    assert (missing.delta, missing.p_value, new.delta, new.p_value) == (None, None, None, None)


def test_info_metric_is_shown_with_its_statistics() -> None:
    result = compare_metric("epochs_s", [100.0, 110.0, 90.0], [80.0, 85.0, 75.0], None)

    assert (result.verdict, result.goal, result.gate) == ("info", None, False)
    assert result.delta == pytest.approx(-20.0)
    assert result.p_value == pytest.approx(
        float(stats.ttest_ind([80.0, 85.0, 75.0], [100.0, 110.0, 90.0], equal_var=False).pvalue)
    )


def test_huge_values_report_none_where_a_float_cannot_hold_them() -> None:
    result = compare_metric("m", [-1.7e308, -1.7e308], [1.7e308, 1.6e308], rule())

    assert result.verdict == "improved"
    assert result.delta is None  # 3.3e308 is beyond the largest float
    assert fields_of(result.head) == (2, pytest.approx(1.65e308), pytest.approx(0.5**0.5 * 1e307))


@pytest.mark.parametrize(
    ("gate", "expected"),
    [pytest.param(True, ["acc"], id="gated"), pytest.param(False, [], id="not-gated")],
)
def test_regressions_only_count_gated_metrics(gate: bool, expected: list[str]) -> None:
    results = compare_metrics(
        {"acc": [0.9], "time_s": [10.0]},
        {"acc": [0.8], "time_s": [20.0]},
        {"acc": rule(gate=gate)},
    )

    assert [r.name for r in regressions(results)] == expected
    assert {r.name: r.verdict for r in results} == {"acc": "regressed", "time_s": "info"}


def test_compare_metrics_orders_worst_first_then_by_name() -> None:
    rules = {name: rule() for name in ("b_reg", "a_reg", "inc", "imp", "same", "gone", "born")}
    base = {
        "b_reg": [0.9], "a_reg": [0.9], "inc": [0.70, 0.90, 0.80], "imp": [0.5],
        "same": [0.5], "gone": [0.5], "bad": [0.5], "zinfo": [1.0],
    }  # fmt: skip
    head = {
        "b_reg": [0.8], "a_reg": [0.8], "inc": [0.75, 0.95, 0.87], "imp": [0.6],
        "same": [0.5], "born": [0.5], "bad": [NAN], "zinfo": [2.0],
    }  # fmt: skip

    results = compare_metrics(base, head, rules)

    assert [(r.verdict, r.name) for r in results] == [
        ("regressed", "a_reg"),
        ("regressed", "b_reg"),
        ("inconclusive", "inc"),
        ("improved", "imp"),
        ("missing", "gone"),
        ("new", "born"),
        ("invalid", "bad"),
        ("unchanged", "same"),
        ("info", "zinfo"),
    ]


def test_compare_metrics_uses_each_metrics_history() -> None:
    results = compare_metrics(
        {"acc": [0.80], "loss": [0.30]},
        {"acc": [0.88], "loss": [0.25]},
        {"acc": rule(), "loss": rule("min")},
        history={"acc": HISTORY},
    )

    flags = {r.name: (r.verdict, r.noise_from_history, r.single_sample) for r in results}
    assert flags == {"acc": ("improved", True, False), "loss": ("improved", False, True)}


def _floats(result: MetricResult) -> list[float | None]:
    sides = [s for s in (result.base, result.head) if s is not None]
    values: list[float | None] = [v for s in sides for v in (s.mean, s.std)]
    values += [result.delta, result.delta_pct, result.p_value, *(result.ci95 or ())]
    return values


odd_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1e-300]
)
rules = st.none() | st.builds(
    rule,
    goal=st.sampled_from(["max", "min"]),
    tolerance=st.sampled_from([0.0, 0.01, 1e300, "2%", "0%", "1e6%"]),
    gate=st.booleans(),
)


@settings(deadline=None, max_examples=400)
@given(
    base=st.lists(odd_floats, max_size=6),
    head=st.lists(odd_floats, max_size=6),
    history=st.lists(odd_floats, max_size=8),
    compare=rules,
)
def test_any_numbers_give_a_verdict_and_finite_or_none_floats(
    base: list[float], head: list[float], history: list[float], compare: Compare | None
) -> None:
    result = compare_metric("m", base, head, compare, history=history)

    assert result.verdict in get_args(Verdict)
    assert all(v is None or math.isfinite(v) for v in _floats(result))
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0
    if result.ci95 is not None:
        assert result.ci95[0] <= result.ci95[1]
    if result.single_sample:
        assert result.verdict != "inconclusive"
