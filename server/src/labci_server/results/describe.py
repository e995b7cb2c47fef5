"""A judged context in ≤ 140 characters, leading with what matters.

    acc 0.902 (−0.010) · loss 0.231 (−0.010) · 1 regression

Metrics come in the order of the comparison (regressions first), each with its value
(the mean over repeats) and its change from the baseline; the tail says how many gated
regressions there are, or why there is no comparison. Metrics that do not fit are
counted ("+2 more") rather than cut mid-word; the tail is never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..forge.outbox import MAX_DESCRIPTION_CHARS, clip_description
from .compare import MetricResult

MINUS = "\u2212"  # a typographic minus, as in the forge's own UI
SEPARATOR = " · "


def number(value: float, *, signed: bool = False) -> str:
    """4 significant digits; whole numbers as they are; a real minus sign."""
    if not math.isfinite(value):
        text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    elif value == int(value) and abs(value) < 1e9:
        text = str(int(value))
    else:
        text = f"{value:.4g}"
    if signed and value == 0:
        return "±0"
    if signed and not text.startswith("-"):
        text = "+" + text
    return text.replace("-", MINUS)


def metric_part(result: MetricResult, *, compared: bool = True) -> str:
    if result.head is None:
        return f"{result.name} missing"
    text = f"{result.name} {number(result.head.mean)}"
    if result.delta is not None:
        text += f" ({number(result.delta, signed=True)})"
    elif result.verdict == "new" and compared:
        text += " (new)"
    return text


def tail_of(results: Sequence[MetricResult], note: str | None) -> str:
    regressed = sum(1 for r in results if r.verdict == "regressed" and r.gate)
    repeats = max((r.head.n for r in results if r.head is not None), default=1)
    parts: list[str] = []
    if regressed:
        parts.append(f"{regressed} regression" + ("s" if regressed > 1 else ""))
    if repeats > 1:
        parts.append(f"mean of {repeats}")
    if note and note.strip():
        parts.append(note)
    return SEPARATOR.join(parts)


def compose(
    results: Sequence[MetricResult], note: str | None = None, *, compared: bool = True
) -> str:
    """The description: metric parts that fit, then the tail (regressions, repeats, `note`).
    `compared` False: there was no baseline, so no metric is "new"."""
    tail = tail_of(results, note)
    parts = [metric_part(r, compared=compared) for r in results]
    budget = MAX_DESCRIPTION_CHARS - (len(SEPARATOR) + len(tail) if tail else 0)
    kept: list[str] = []
    for index, part in enumerate(parts):
        left = len(parts) - index - 1
        more = f"{SEPARATOR}+{left} more" if left else ""
        candidate = SEPARATOR.join([*kept, part])
        if len(candidate) + len(more) > budget:
            kept.append(f"+{len(parts) - index} more")
            break
        kept.append(part)
    text = SEPARATOR.join(part for part in [*kept, tail] if part)
    return clip_description(text) or "no metrics"
