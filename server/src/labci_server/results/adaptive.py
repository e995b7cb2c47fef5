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


def looks_note(alpha: float, look: int, *, extending: bool = False) -> str:
    """The comment footer's sentence about the looks."""
    half = f"{alpha / LOOKS * 100:g} %"
    if extending:
        return (
            f"Adaptive repeats: a metric is worse than its tolerance but not significantly "
            f"at the first look ({half}); more seeds are running on both sides."
        )
    which = "first" if look == 1 else "second, with the added seeds"
    return f"Adaptive repeats: decided at the {which} look; each of the {LOOKS} looks is at {half}."
