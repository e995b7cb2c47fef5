"""How often labci's own comparison is wrong: seeded Monte-Carlo runs of simulated pull
requests through `compare_metrics` (and the two looks of adaptive repeats).

Each rate comes with its exact (Clopper-Pearson) 95 % interval, and an assertion uses the
interval's bound on the side that would show the method wrong: a false-failure rate fails
the test only when even its lower bound is above 5 %, a power only when even its upper
bound is below 80 %. The runs are seeded, so a run's figures are the same every time; the
rates are printed (pytest -s) for the README.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from scipy import stats

from labci_server.results.adaptive import look_alpha, wants_more_seeds
from labci_server.results.compare import MetricResult, Summary, compare_metrics, regressions
from labci_spec import Compare

ALPHA = 0.05
Noise = Callable[[random.Random, float], float]


def normal(draw: random.Random, mean: float) -> float:
    return draw.gauss(mean, 1.0)


def accuracy_on_360(draw: random.Random, mean: float) -> float:
    """Skewed, discrete seed noise of an accuracy on a 360-image test set: each seed's
    model has its own true accuracy (seed-to-seed spread), then 360 images are scored."""
    true = min(max(draw.gauss(0.92 + mean * 0.01, 0.01), 0.0), 1.0)
    return sum(draw.random() < true for _ in range(360)) / 360


def rule(tolerance: float) -> Compare:
    return Compare.model_validate({"goal": "max", "tolerance": tolerance})


def interval(hits: int, trials: int) -> tuple[float, float]:
    found = stats.binomtest(hits, trials).proportion_ci(0.95, method="exact")
    return float(found.low), float(found.high)


def report(what: str, hits: int, trials: int) -> tuple[float, float]:
    low, high = interval(hits, trials)
    print(f"{what}: {hits / trials:.1%} [{low:.1%}, {high:.1%}] of {trials}")
    return low, high


def status_fails(
    draw: random.Random,
    *,
    metrics: int,
    seeds: int,
    shift: float = 0.0,
    tolerance: float = 0.0,
    noise: Noise = normal,
    maximum: int | None = None,
) -> bool:
    """One simulated pull request: `metrics` gated metrics, the first shifted by `shift`
    (negative: worse); does its status fail? With `maximum`, adaptive repeats: a second
    look with seeds added on both sides when the first asks for it."""
    rules = {f"m{i}": rule(tolerance) for i in range(metrics)}
    base = {name: [noise(draw, 0.0) for _ in range(seeds)] for name in rules}
    head = {
        name: [noise(draw, shift if name == "m0" else 0.0) for _ in range(seeds)] for name in rules
    }
    adaptive = maximum is not None
    results = compare_metrics(base, head, rules, alpha=look_alpha(ALPHA, adaptive=adaptive))
    if maximum is not None and wants_more_seeds(results):
        for name in rules:
            base[name] += [noise(draw, 0.0) for _ in range(maximum - seeds)]
            head[name] += [
                noise(draw, shift if name == "m0" else 0.0) for _ in range(maximum - seeds)
            ]
        results = compare_metrics(base, head, rules, alpha=look_alpha(ALPHA, adaptive=True))
    return bool(regressions(results))


def rate(trials: int, seed: int, run: Callable[[random.Random], bool]) -> int:
    draw = random.Random(seed)
    return sum(run(draw) for _ in range(trials))


@pytest.mark.parametrize("metrics", [1, 5, 10])
def test_nothing_changed_fails_at_most_5_percent(metrics: int) -> None:
    trials = 2000 if metrics == 1 else 1000
    hits = rate(trials, metrics, lambda d: status_fails(d, metrics=metrics, seeds=5))

    low, _ = report(f"false failures, {metrics} gated metrics, 5 v 5 seeds", hits, trials)

    assert low <= ALPHA


@pytest.mark.parametrize("metrics", [1, 5])
def test_nothing_changed_on_real_accuracy_noise(metrics: int) -> None:
    trials = 500
    hits = rate(
        trials,
        100 + metrics,
        lambda d: status_fails(d, metrics=metrics, seeds=5, noise=accuracy_on_360),
    )

    low, _ = report(f"false failures, accuracy noise, {metrics} metrics", hits, trials)

    assert low <= ALPHA


@pytest.mark.parametrize("maximum", [None, 10])
def test_a_change_of_exactly_the_tolerance_is_regressed_at_most_5_percent(
    maximum: int | None,
) -> None:
    trials = 2000
    hits = rate(
        trials,
        7,
        lambda d: status_fails(d, metrics=1, seeds=5, shift=-0.5, tolerance=0.5, maximum=maximum),
    )

    low, _ = report(f"regressed at the tolerance, maximum {maximum}", hits, trials)

    assert low <= ALPHA


def test_2_sigma_regression_is_caught_80_percent_with_5_seeds_and_adaptive_repeats() -> None:
    """2σ worse than the tolerance on one of 5 gated metrics, 5 seeds per side, up to 10."""
    trials = 1000
    hits = rate(
        trials,
        8,
        lambda d: status_fails(d, metrics=5, seeds=5, shift=-2.5, tolerance=0.5, maximum=10),
    )

    _, high = report("power, 2σ beyond tolerance, 5 of 5 metrics, 5→10 seeds", hits, trials)

    assert high >= 0.80


def test_2_sigma_regression_one_metric_without_adaptive_repeats() -> None:
    """The one-sided test alone: the two-sided one caught this 77 % of the time."""
    trials = 2000
    hits = rate(trials, 9, lambda d: status_fails(d, metrics=1, seeds=5, shift=-2.0))

    _, high = report("power, 2σ, 1 metric, 5 v 5 seeds, no adaptive", hits, trials)

    assert high >= 0.80


def test_adaptive_repeats_add_seeds_only_when_needed() -> None:
    """With nothing changed and a tolerance, a second look is rare; with a change just
    beyond the tolerance it is common."""

    def asks(shift: float) -> Callable[[random.Random], bool]:
        def one(draw: random.Random) -> bool:
            rules = {"m0": rule(0.5)}
            base = {"m0": [draw.gauss(0, 1) for _ in range(5)]}
            head = {"m0": [draw.gauss(shift, 1) for _ in range(5)]}
            return bool(wants_more_seeds(compare_metrics(base, head, rules, alpha=0.025)))

        return one

    quiet = rate(1000, 10, asks(0.0))
    doubtful = rate(1000, 11, asks(-1.0))

    _, quiet_high = report("second look asked, nothing changed", quiet, 1000)
    doubtful_low, _ = report("second look asked, 1σ worse (tolerance 0.5σ)", doubtful, 1000)

    assert quiet_high < 0.5 < doubtful_low


def test_one_sample_per_side_with_history_keeps_its_level() -> None:
    """Single runs judged with the spread of 6 earlier single runs as the noise."""

    def one(draw: random.Random) -> bool:
        history: list[float | Summary] = [draw.gauss(0, 1) for _ in range(6)]
        results = compare_metrics(
            {"m0": [draw.gauss(0, 1)]}, {"m0": [draw.gauss(0, 1)]}, {"m0": rule(0.0)},
            history={"m0": history},
        )  # fmt: skip
        return bool(regressions(results))

    hits = rate(2000, 12, one)

    low, _ = report("false failures, 1 v 1 with 6 history results", hits, 2000)

    assert low <= ALPHA


def test_one_sample_without_history_never_fails() -> None:
    """Measured: with the tolerance alone deciding, such a status failed about half the time."""
    hits = rate(500, 13, lambda d: status_fails(d, metrics=1, seeds=1, shift=0.0))

    assert hits == 0


def test_zero_spread_on_a_small_test_set_never_fails_with_certainty() -> None:
    """All seeds agree on both sides; the head flipped one of 360 images. Without a floor
    that is unverified, never a failure "with certainty"."""
    results: list[MetricResult] = compare_metrics(
        {"acc": [0.9] * 5}, {"acc": [0.9 - 1 / 360] * 5}, {"acc": rule(0.0)}
    )

    assert [(r.verdict, r.p_value) for r in results] == [("unverified", None)]
    assert "identical on every run" in results[0].explanation
