"""Adaptive repeats (`metrics.repeats: {axis: seed, max: N}`): look once more, only when needed.

A status is judged at most twice. The first look uses the seeds the workflow declares;
when no gated metric has regressed significantly yet but one is worse than its tolerance
without being significantly so, more seeds are run on both sides (the base's are kept and
reused by every pull request on that base) up to the maximum, and the second look decides
with every seed. Each look gets half of `alpha` (Bonferroni across the looks), so the
status still fails for nothing with probability ≤ alpha, whatever the first look found.
"""

from __future__ import annotations

from collections.abc import Sequence

from .compare import MetricResult, regressions

LOOKS = 2


def look_alpha(alpha: float, *, adaptive: bool) -> float:
    """The level of each look: all of `alpha` without adaptive repeats, half of it with."""
    return alpha / LOOKS if adaptive else alpha


def wants_more_seeds(results: Sequence[MetricResult]) -> list[str]:
    """The gated metrics that ask for more seeds after a first look: worse than their
    tolerance, not yet significantly; none when a gated metric already regressed."""
    if regressions(results):
        return []
    return sorted(
        r.name for r in results if r.gate and r.verdict == "inconclusive" and r.worse_than_margin
    )


def seeds_wanted(declared: int, maximum: int) -> int:
    """How many seeds to add on each side: up to the maximum, in one step."""
    return max(0, maximum - declared)


def looks_note(alpha: float, look: int) -> str:
    """The comment footer's sentence about the looks."""
    half = f"{alpha / LOOKS * 100:g} %"
    if look == 1:
        return f"Adaptive repeats: decided at the first of up to {LOOKS} looks, each at {half}."
    return (
        f"Adaptive repeats: decided at the second look, with the added seeds; each look at {half}."
    )
