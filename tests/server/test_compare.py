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
    holm,
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
TIGHT = [0.800, 0.801, 0.799]
VERDICTS = [
    pytest.param(TIGHT, TIGHT, rule(), "unchanged", id="identical-tight-equivalent"),
    # The same means, but an interval too wide to show they are within ±0.01.
    pytest.param([0.80, 0.81, 0.79], [0.80, 0.81, 0.79], rule(), "inconclusive", id="identical-noisy"),
    pytest.param(
        [0.80, 0.81, 0.79, 0.80, 0.80], [0.85, 0.86, 0.84, 0.85, 0.86], rule(), "improved",
        id="improved-5-seeds",
    ),
    pytest.param([0.85, 0.86, 0.84], [0.80, 0.81, 0.79], rule(), "regressed", id="regressed-3-seeds"),
    pytest.param([0.80, 0.70, 0.90], [0.79, 0.92, 0.69], rule(), "inconclusive", id="same-mean-noisy"),
    pytest.param([0.70, 0.90, 0.80], [0.75, 0.95, 0.87], rule(), "inconclusive", id="beyond-tol-noisy"),
    pytest.param([0.30, 0.31, 0.29], [0.25, 0.26, 0.24], rule("min"), "improved", id="min-lower-is-better"),
    pytest.param([0.30, 0.31, 0.29], [0.25, 0.26, 0.24], rule("max"), "regressed", id="max-lower-is-worse"),
    pytest.param([0.30, 0.31, 0.29], [0.35, 0.36, 0.34], rule("min"), "regressed", id="min-higher-is-worse"),
    # Worse by more than the point tolerance, but not significantly worse than it: the
    # tolerance is a margin in the hypothesis, not a filter on the point estimate.
    pytest.param([0.85, 0.86, 0.84], [0.83, 0.84, 0.82], rule(), "inconclusive", id="beyond-tol-not-significant"),
    # One value per side and no history: no noise estimate, never gated.
    pytest.param([0.50], [0.505], rule(tolerance="2%"), "unverified", id="1v1-within"),
    pytest.param([0.50], [0.40], rule(), "unverified", id="1v1-far-worse"),
    pytest.param([0.0], [-0.001], rule(tolerance="2%"), "unverified", id="1v1-zero-base"),
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
    pytest.param([-1.7e308, -1.6e308], [1.7e308, 1.6e308], rule(), "improved", id="huge-opposite"),
    # Deterministic jobs: identical on every run. Equal on both sides is unchanged; a
    # difference without a floor under the noise cannot be judged.
    pytest.param([0.5] * 3, [0.5] * 3, rule(), "unchanged", id="deterministic-equal"),
    pytest.param([0.1] * 3, [0.2] * 3, rule(), "unverified", id="deterministic-different"),
    pytest.param([0.2] * 2, [0.1] * 4, rule(), "unverified", id="deterministic-different-n"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "head", "compare", "verdict"), VERDICTS)
def test_verdict(
    base: list[float], head: list[float], compare: Compare | None, verdict: Verdict
) -> None:
    assert compare_metric("m", base, head, compare).verdict == verdict


def shifted(values: list[float], by: float) -> list[float]:
    return [v + by for v in values]


def regression_p(base: list[float], head: list[float], goal: str, margin: float) -> float:
    """SciPy's own one-sided Welch test of "worse by more than `margin`", on the raw samples."""
    with warnings.catch_warnings():  # ttest_ind warns on a constant side; the module does not
        warnings.simplefilter("ignore", RuntimeWarning)
        if goal == "max":  # H1: head - base < -margin
            return float(
                stats.ttest_ind(
                    shifted(head, margin), base, equal_var=False, alternative="less"
                ).pvalue
            )
        return float(  # H1: head - base > margin
            stats.ttest_ind(
                shifted(head, -margin), base, equal_var=False, alternative="greater"
            ).pvalue
        )


# Welch's test on repeats: (base, head, rule, verdict); the one-sided p and the 90 %
# interval must match SciPy's own `ttest_ind` on the raw samples.
WELCH = [
    pytest.param([0.80, 0.81, 0.79, 0.80, 0.80], [0.85, 0.86, 0.84, 0.85, 0.86], rule(), "improved", id="improved-5"),
    pytest.param([0.90, 0.91, 0.92, 0.90], [0.86, 0.85, 0.87, 0.86], rule(), "regressed", id="regressed-4"),
    pytest.param([0.231, 0.229, 0.233], [0.251, 0.249, 0.255], rule("min", 0.005), "regressed", id="loss-regressed-3"),
    pytest.param([0.70, 0.90, 0.80], [0.75, 0.95, 0.87], rule(), "inconclusive", id="inconclusive-3"),
    pytest.param([0.80, 0.70, 0.90], [0.79, 0.92, 0.69], rule(), "inconclusive", id="same-mean-noisy"),
    pytest.param([0.80, 0.80, 0.80], [0.75, 0.76, 0.74], rule(), "regressed", id="constant-base"),
    # Base 5 v head 2: Welch's degrees of freedom come mostly from the smaller side.
    pytest.param([0.910, 0.915, 0.905, 0.912, 0.908], [0.880, 0.884], rule(), "regressed", id="base-5-head-2"),
    pytest.param([0.910, 0.915, 0.905, 0.912, 0.908], [0.900, 0.915], rule(), "inconclusive", id="base-5-head-2-noisy"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "head", "compare", "verdict"), WELCH)
def test_welch_matches_scipy(
    base: list[float], head: list[float], compare: Compare, verdict: Verdict
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = stats.ttest_ind(head, base, equal_var=False).confidence_interval(0.90)

    result = compare_metric("m", base, head, compare)

    assert result.verdict == verdict
    assert result.method == "welch"
    assert result.interval == pytest.approx((float(low), float(high)), rel=1e-9)
    assert result.interval_level == pytest.approx(0.90)
    assert result.delta == pytest.approx(statistics.mean(head) - statistics.mean(base))
    if verdict in ("regressed", "inconclusive"):
        expected = regression_p(base, head, compare.goal, compare.tolerance.amount)
        assert result.p_value == pytest.approx(expected, rel=1e-6)
        assert (result.p_value < 0.05) == (verdict == "regressed")


def test_one_sided_test_has_the_power_a_two_sided_one_lacks() -> None:
    """A regression with a two-sided p of 0.06 is one-sided significant in the goal's
    direction: each direction no longer gets only half of alpha."""
    base, head = [0.900, 0.905, 0.895, 0.902], [0.890, 0.897, 0.889, 0.885]
    two_sided = float(stats.ttest_ind(head, base, equal_var=False).pvalue)

    result = compare_metric("acc", base, head, rule(tolerance=0.0))

    assert 0.05 < two_sided < 0.1 or two_sided < 0.05
    assert result.p_value == pytest.approx(two_sided / 2, rel=1e-6)
    assert result.verdict == "regressed"


def test_equivalence_is_tost_on_the_interval() -> None:
    """`unchanged` needs the 90 % interval inside ±tolerance; its p is the larger of the two
    one-sided tests against the margins."""
    base, head = [0.800, 0.804, 0.797, 0.801, 0.799], [0.801, 0.799, 0.803, 0.802, 0.798]
    margin = 0.005
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        above = stats.ttest_ind(shifted(head, margin), base, equal_var=False, alternative="greater")
        below = stats.ttest_ind(shifted(head, -margin), base, equal_var=False, alternative="less")

    result = compare_metric("acc", base, head, rule(tolerance=margin))

    assert result.verdict == "unchanged"
    assert result.interval is not None
    assert -margin < result.interval[0] < result.interval[1] < margin
    assert result.p_value == pytest.approx(max(above.pvalue, below.pvalue), rel=1e-6)
    assert "TOST" in result.explanation


def test_tolerance_zero_never_shows_equivalence() -> None:
    result = compare_metric("acc", TIGHT, TIGHT, rule(tolerance=0))

    assert result.verdict == "inconclusive"
    assert "no evidence either way" in result.explanation


def test_summaries_are_mean_sample_std_and_n() -> None:
    result = compare_metric("acc", [0.80, NAN, 0.82, INF, 0.84], [0.9], rule())

    assert fields_of(result.base) == (3, pytest.approx(0.82), pytest.approx(0.02))
    assert result.head == Summary(n=1, mean=0.9, std=0.0)
    assert result.delta_pct == pytest.approx(0.08 / 0.82 * 100)


@pytest.mark.parametrize(
    ("base", "head", "n_base", "n_head", "verdict"),
    [
        pytest.param([0.80, NAN, 0.81, 0.79], [0.9, 0.91, 0.89], 3, 3, "improved", id="nan-in-base"),
        pytest.param([0.80, 0.81, 0.79], [INF, 0.9, -INF, 0.91, 0.89], 3, 3, "improved", id="inf-in-head"),
        pytest.param([NAN, 0.80], [0.9, INF], 1, 1, "unverified", id="down-to-one-each"),
    ],
)  # fmt: skip
def test_non_finite_values_are_dropped(
    base: list[float], head: list[float], n_base: int, n_head: int, verdict: Verdict
) -> None:
    result = compare_metric("acc", base, head, rule())

    assert (result.base and result.base.n, result.head and result.head.n) == (n_base, n_head)
    assert result.verdict == verdict


def test_interval_covers_about_90_percent() -> None:
    draw, true_difference, covered = random.Random(11), 0.02, 0
    for _ in range(1000):
        base = [draw.gauss(0.5, 0.01) for _ in range(5)]
        head = [draw.gauss(0.5 + true_difference, 0.02) for _ in range(5)]
        interval = compare_metric("m", base, head, rule()).interval
        assert interval is not None
        covered += interval[0] <= true_difference <= interval[1]

    # 1000 draws: the coverage's standard error is 0.95 points, so 87-93 % is ±3 of them.
    assert 0.87 <= covered / 1000 <= 0.93


def test_alpha_sets_the_level_and_the_interval() -> None:
    base, head = [0.900, 0.905, 0.895, 0.902], [0.890, 0.897, 0.889, 0.885]

    loose = compare_metric("acc", base, head, rule(tolerance=0.0), alpha=0.10)
    strict = compare_metric("acc", base, head, rule(tolerance=0.0), alpha=0.001)

    assert (loose.verdict, strict.verdict) == ("regressed", "inconclusive")
    assert loose.p_value == pytest.approx(strict.p_value)
    assert (loose.interval_level, strict.interval_level) == (
        pytest.approx(0.8),
        pytest.approx(0.998),
    )


# Fewer than 2 values on a side: the variance comes from wherever it was measured.
HISTORY = [0.80, 0.81, 0.79, 0.80, 0.82, 0.78]


def pooled_p(
    gain: float, margin: float, sources: list[tuple[float, int]], n_base: int, n_head: int
) -> tuple[float, int]:
    """The regression test with a pooled variance, written out: (p, degrees of freedom)."""
    df = sum(d for _, d in sources)
    variance = sum(v * d for v, d in sources) / df
    se = math.sqrt(variance * (1 / n_base + 1 / n_head))
    return float(stats.t.cdf((gain + margin) / se, df)), df


@pytest.mark.parametrize(
    ("base", "head", "history", "sources"),
    [
        pytest.param([0.80, 0.82, 0.81, 0.79, 0.80], [0.78], (), "base", id="base-5-lends-to-head-1"),
        pytest.param([0.80], [0.78, 0.79, 0.77], (), "head", id="head-3-lends-to-base-1"),
        pytest.param([0.80], [0.78], HISTORY, "history", id="1v1-single-run-history"),
        pytest.param([0.80, 0.82], [0.77], HISTORY, "base+history", id="2v1-base-and-history"),
    ],
)  # fmt: skip
def test_one_side_or_the_history_lends_its_variance(
    base: list[float], head: list[float], history: list[float], sources: str
) -> None:
    lent: list[tuple[float, int]] = []
    if "base" in sources:
        lent.append((statistics.variance(base), len(base) - 1))
    if "head" in sources:
        lent.append((statistics.variance(head), len(head) - 1))
    if "history" in sources:
        lent.append((statistics.variance(history), len(history) - 1))
    gain = statistics.mean(head) - statistics.mean(base)
    expected, df = pooled_p(gain, 0.01, lent, len(base), len(head))

    result = compare_metric("acc", base, head, rule(), history=history)

    assert result.method == "pooled"
    assert result.df == df
    assert result.p_value == pytest.approx(expected, rel=1e-6)
    assert "noise from" in result.explanation


def test_results_with_repeats_count_as_history() -> None:
    """Each earlier result with repeats lends its own spread (n − 1 degrees of freedom)."""
    history = [Summary(5, 0.80, 0.010), Summary(5, 0.81, 0.012), Summary(3, 0.79, 0.008)]
    df = sum(h.n - 1 for h in history)
    variance = sum(h.std**2 * (h.n - 1) for h in history) / df
    se = math.sqrt(2 * variance)
    expected = float(stats.t.sf((0.05 - 0.01) / se, df))  # better by more than 0.01

    result = compare_metric("acc", [0.80], [0.85], rule(), history=history)

    assert (result.method, result.df) == ("pooled", 10)
    assert result.verdict == "improved"
    assert result.p_value == pytest.approx(expected, rel=1e-6)


def test_one_sample_and_no_history_is_unverified_and_says_what_would_help() -> None:
    result = compare_metric("acc", [0.90], [0.80], rule(), history=[0.85])

    assert result.verdict == "unverified"
    assert (result.p_value, result.interval, result.method) == (None, None, None)
    assert "metrics.repeats" in result.explanation
    assert regressions([result]) == []  # far worse, and still not failing the status


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
        {"acc": [0.90, 0.91, 0.89], "time_s": [10.0]},
        {"acc": [0.80, 0.81, 0.79], "time_s": [20.0]},
        {"acc": rule(gate=gate)},
    )

    assert [r.name for r in regressions(results)] == expected
    assert {r.name: r.verdict for r in results} == {"acc": "regressed", "time_s": "info"}


def test_compare_metrics_orders_worst_first_then_by_name() -> None:
    rules = {
        name: rule() for name in ("b_reg", "a_reg", "inc", "unv", "imp", "same", "gone", "born")
    }
    down, up = [0.90, 0.91, 0.89], [0.80, 0.81, 0.79]
    base = {
        "b_reg": down, "a_reg": down, "inc": [0.70, 0.90, 0.80], "unv": [0.5], "imp": up,
        "same": TIGHT, "gone": [0.5], "bad": [0.5], "zinfo": [1.0],
    }  # fmt: skip
    head = {
        "b_reg": up, "a_reg": up, "inc": [0.75, 0.95, 0.87], "unv": [0.4], "imp": down,
        "same": TIGHT, "born": [0.5], "bad": [NAN], "zinfo": [2.0],
    }  # fmt: skip

    results = compare_metrics(base, head, rules)

    assert [(r.verdict, r.name) for r in results] == [
        ("regressed", "a_reg"),
        ("regressed", "b_reg"),
        ("inconclusive", "inc"),
        ("unverified", "unv"),
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

    found = {r.name: (r.verdict, r.method) for r in results}
    assert found == {"acc": ("improved", "pooled"), "loss": ("unverified", None)}


def test_holm_adjusts_across_the_gated_metrics_of_a_status() -> None:
    """Five gated metrics, one with a raw p of about 0.02: alone it would fail the status,
    in a family of five it does not (Holm: 5 × 0.02 > 0.05). A non-gated metric stays out
    of the family and keeps its raw p."""
    base = {f"m{i}": [0.800, 0.810, 0.790, 0.805, 0.795] for i in range(6)}
    head = {name: list(values) for name, values in base.items()}
    head["m0"] = [0.786, 0.796, 0.776, 0.791, 0.781]  # a little worse
    head["m5"] = list(head["m0"])  # the same change, not gated
    rules = {f"m{i}": rule(tolerance=0.0) for i in range(5)} | {
        "m5": rule(tolerance=0.0, gate=False)
    }
    raw = {name: regression_p(base[name], head[name], "max", 0.0) for name in rules}

    alone = compare_metric("m0", base["m0"], head["m0"], rules["m0"])
    results = {r.name: r for r in compare_metrics(base, head, rules)}

    assert 0.01 < raw["m0"] < 0.05
    assert alone.verdict == "regressed"
    assert raw["m0"] == min(raw[f"m{i}"] for i in range(5))  # the smallest: Holm's 5 × p
    assert results["m0"].p_adjusted == pytest.approx(5 * raw["m0"], rel=1e-6)
    assert results["m0"].p_value == pytest.approx(raw["m0"], rel=1e-6)
    assert results["m0"].verdict == "inconclusive"
    assert results["m0"].family == 5
    assert "Holm-adjusted over 5 gated metrics" in results["m0"].explanation
    assert results["m5"].p_adjusted == results["m5"].p_value
    assert results["m5"].verdict == "regressed"  # shown as such, but it gates nothing
    assert regressions(list(results.values())) == []


def test_holm_known_answer() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, kept monotone
    assert holm([0.2, 0.3]) == pytest.approx([0.4, 0.4])
    assert holm([]) == []


# Floating point at the tolerance: 0.912 - 0.902 is 0.010000000000000009. With noise far
# below that rounding, a change of exactly the tolerance must not count as worse than it.
@pytest.mark.parametrize(
    ("base", "head", "compare"),
    [
        pytest.param([0.912, 0.912 + 1e-17], [0.902, 0.902 - 1e-17], rule(tolerance=0.01), id="abs-down"),
        pytest.param([0.902, 0.902 + 1e-17], [0.912, 0.912 - 1e-17], rule("min", 0.01), id="abs-up-min"),
        pytest.param([0.7, 0.7 + 1e-16], [0.77, 0.77 + 1e-16], rule("min", "10%"), id="relative"),
    ],
)  # fmt: skip
def test_a_change_of_exactly_the_tolerance_is_not_worse_than_it(
    base: list[float], head: list[float], compare: Compare
) -> None:
    result = compare_metric("m", base, head, compare)

    assert result.verdict != "regressed"
    assert not result.worse_than_margin


def test_just_beyond_the_boundary_is_worse() -> None:
    result = compare_metric(
        "m", [0.912, 0.912 + 1e-9, 0.912 - 1e-9], [0.9019, 0.9019 + 1e-9, 0.9019 - 1e-9], rule()
    )

    assert (result.verdict, result.worse_than_margin) == ("regressed", True)


def test_large_values_keep_the_boundary() -> None:
    noise = [0.0, 1e-3, -1e-3]
    at = compare_metric(
        "m", [1e6 + e for e in noise], [1e6 + 0.5 + e for e in noise], rule("min", 0.5)
    )
    beyond = compare_metric(
        "m", [1e6 + e for e in noise], [1e6 + 0.51 + e for e in noise], rule("min", 0.5)
    )

    assert (at.verdict, at.worse_than_margin) == ("inconclusive", False)
    assert (beyond.verdict, beyond.worse_than_margin) == ("regressed", True)


def _floats(result: MetricResult) -> list[float | None]:
    sides = [s for s in (result.base, result.head) if s is not None]
    values: list[float | None] = [v for s in sides for v in (s.mean, s.std)]
    values += [result.delta, result.delta_pct, result.p_value, result.p_adjusted]
    values += [*(result.interval or ())]
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
    for p in (result.p_value, result.p_adjusted):
        assert p is None or 0.0 <= p <= 1.0
    if result.interval is not None:
        assert result.interval[0] <= result.interval[1]
    if result.method is None and compare is not None:
        assert result.verdict != "regressed"  # never gated without a noise estimate


def sized(test_size: int, tolerance: float = 0.0) -> Compare:
    return Compare.model_validate({"goal": "max", "tolerance": tolerance, "test-size": test_size})


def test_identical_runs_are_compared_with_the_binomial_floor() -> None:
    """Five seeds agree on both sides; the head got one of 360 test images wrong more.
    The floor p(1 − p)/360 is the noise of each run, known (normal distribution)."""
    base, head = [0.9] * 5, [0.9 - 1 / 360] * 5
    share = (0.9 * 5 + (0.9 - 1 / 360) * 5) / 10
    se = math.sqrt(share * (1 - share) / 360 * (1 / 5 + 1 / 5))
    expected = float(stats.norm.cdf((-1 / 360) / se))

    result = compare_metric("acc", base, head, sized(360))

    assert (result.method, result.df) == ("floor", math.inf)
    assert result.verdict == "inconclusive"  # never "regressed with certainty"
    assert result.p_value == pytest.approx(expected, rel=1e-6)
    assert "binomial floor" in result.explanation


def test_the_floor_is_a_lower_bound_not_a_replacement() -> None:
    """A spread larger than the floor is used as measured (Welch)."""
    base, head = [0.90, 0.95, 0.85, 0.92], [0.88, 0.93, 0.83, 0.90]
    with_floor = compare_metric("acc", base, head, sized(10_000))
    without = compare_metric("acc", base, head, rule(tolerance=0.0))

    assert with_floor.method == "welch"
    assert with_floor.p_value == pytest.approx(without.p_value)


def test_percentages_get_the_floor_in_their_own_unit() -> None:
    as_share = compare_metric("acc", [0.9] * 3, [0.88] * 3, sized(360))
    as_percent = compare_metric("acc", [90.0] * 3, [88.0] * 3, sized(360))

    assert as_percent.p_value == pytest.approx(as_share.p_value, rel=1e-9)
    assert as_percent.method == "floor"


def test_a_test_size_on_values_that_are_not_shares_gives_no_floor() -> None:
    result = compare_metric("loss", [123.0] * 3, [124.0] * 3, sized(360))

    assert result.verdict == "unverified"
    assert "identical on every run" in result.explanation


def test_a_single_run_with_a_test_size_is_verifiable() -> None:
    """One run per side, no history: the floor alone is a noise estimate."""
    result = compare_metric("acc", [0.92], [0.80], sized(360, tolerance=0.01))

    assert (result.verdict, result.method) == ("regressed", "floor")
