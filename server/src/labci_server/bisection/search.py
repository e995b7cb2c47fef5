"""Binary search over a change point's commits, and where a measured commit belongs. Pure.

The candidates are the commits after the good commit (the last measured at the old level)
up to and including the bad one (the first measured at the new level), oldest first, on the
default branch's first-parent line. `low` is the index of the newest commit known to be at
the old level (-1: the good commit itself), `high` that of the oldest known at the new level
(the bad commit's at first). The search measures a commit between them and moves one end
there, until `high == low + 1`: `candidates[high]` is the first commit at the new level —
the commit that changed the metric — and the commit before it is its parent on that line.
About log2(n) measurements for n commits: 3 for 5 to 8 commits, 8 for 250.

**Which level a measured commit is at.** The one whose mean (of the change point's segment
before, or after) its own mean is nearer to. A change point is a shift that held for at
least 3 runs on each side, significant at p < 1e-4 and at least 0.5 % of the level
(`changepoints`), so the two levels are far apart next to the run-to-run noise; between two
normal levels with the same spread the nearer one is the maximum-likelihood choice, and it
errs only when a run's noise exceeds half the step. A test against each level could answer
"neither", but the search must decide anyway, and a commit between two levels is as
ambiguous to a test as to this rule; repeats (seeds) average noise away either way.

**Commits that cannot be measured** (the job failed there, or the workflow or job does not
exist at it) are skipped, as `git bisect skip` does: the next probe is the measurable commit
nearest to the middle. When only skipped commits remain between `low` and `high`, the
search ends without a single answer: the change is in one of `candidates[low+1 : high+1]`.

The search assumes one step between the two measured commits: a metric that moved and moved
back in between is found where one of its moves is, not necessarily the first.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

Level = Literal["old", "new"]


def next_probe(low: int, high: int, skipped: Collection[int] = ()) -> int | None:
    """The index to measure next: the middle of (low, high), else the measurable index
    nearest to it (the older of two as near); None when none is left between them."""
    left = [i for i in range(low + 1, high) if i not in skipped]
    if not left:
        return None
    middle = (low + high) / 2
    return min(left, key=lambda i: (abs(i - middle), i))


def place(value: float, *, level_before: float, level_after: float) -> Level:
    """The level a commit measured at `value` is at: the nearer one, the old on a tie."""
    return "new" if abs(value - level_after) < abs(value - level_before) else "old"


def narrowed(low: int, high: int, index: int, level: Level) -> tuple[int, int]:
    """(low, high) once the commit at `index` is known to be at `level`."""
    if not low < index < high:
        raise ValueError(f"index {index} is not between {low} and {high}")
    return (index, high) if level == "old" else (low, index)
