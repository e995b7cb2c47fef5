"""A found commit's effect, and the comment that tells its author.

The effect is the found commit's samples against its parent's (on the first-parent line),
compared like a push with its previous commit (`compare.compare_metric`, with the metric's
`compare` rule): the change with its interval and p-value, and a verdict. With fewer than
two samples on a side the noise comes from the change point's two segments (each one's
run-to-run spread around its own level), never from a history that straddles the step.

The comment goes on the commit (or the pull request that merged it) through the outbox,
found again by its marker, so it is written once however often it is queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..db.models import Bisection
from ..results.comment_render import code, metric_cells
from ..results.compare import Summary, compare_metric
from ..results.describe import number
from ..results.verdict import metric_row
from .probes import Measured

RunUrl = Callable[[int], str]


def comment_name(bisection_id: int) -> str:
    """The comment's name: its outbox context and its marker say it."""
    return f"bisection-{bisection_id}"


def effect_of(bisection: Bisection, parent: Measured, found: Measured) -> dict[str, Any]:
    """The found commit against its parent, as a metric row of the pull request comment."""
    noise = [Summary(int(s["n"]), float(s["mean"]), float(s["std"])) for s in bisection.noise]
    result = compare_metric(
        bisection.metric, parent.values, found.values, found.rule or parent.rule, history=noise
    )
    return metric_row(result)


def comment_body(bisection: Bisection, *, marker: str, run_url: RunUrl) -> str:
    """The comment on the found commit: the metric, its two levels, the effect with its
    interval, and links to the runs that show it and to the search's other steps."""
    metric, sha = code(bisection.metric), bisection.result_sha or ""
    parent = bisection.parent_sha or ""
    effect = bisection.effect or {}
    lines = [
        marker,
        f"### labci: this commit changed {metric}",
        "",
        f"labci bisected a lasting change of {metric} ({code(bisection.context)}) on "
        f"{code(bisection.branch)} to this commit, `{sha[:7]}`: the first commit at the new "
        f"level. Along {code(bisection.branch)} the level went from "
        f"{_level(bisection.level_before, bisection.noise, 0)} up to `{bisection.good_sha[:7]}` "
        f"to {_level(bisection.level_after, bisection.noise, 1)} from "
        f"`{bisection.bad_sha[:7]}` on.",
        "",
        f"| metric | parent `{parent[:7]}` | this commit | Δ [{_level_text(effect)}] | Δ % "
        "| verdict | p | how it was decided |",
        "|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(metric_cells(effect, markdown=True)) + " |" if effect else "",
        "",
        f"The runs that show it: {_run_link(bisection.result_run_id, run_url)} at this commit, "
        f"{_run_link(bisection.parent_run_id, run_url)} at its parent `{parent[:7]}`.",
        "",
        *_steps(bisection, run_url),
    ]
    return "\n".join(lines) + "\n"


def _level(mean: float, noise: list[dict[str, Any]], side: int) -> str:
    if len(noise) > side:
        return f"{number(mean)} (mean of {int(noise[side]['n'])} runs)"
    return number(mean)


def _level_text(effect: dict[str, Any]) -> str:
    level = effect.get("interval_level")
    return f"{level * 100:g} % interval" if level else "interval"


def _run_link(run_id: int | None, run_url: RunUrl) -> str:
    return "—" if run_id is None else f"[run {run_id}]({run_url(run_id)})"


def _steps(bisection: Bisection, run_url: RunUrl) -> list[str]:
    between = len(bisection.candidates or []) - 1
    measured = [s for s in bisection.steps if s.get("level") in ("old", "new")]
    summary = (
        f"How it was found: {len(measured)} of the {between} commits between "
        f"`{bisection.good_sha[:7]}` and `{bisection.bad_sha[:7]}` measured"
    )
    rows = [
        f"| `{str(s['sha'])[:7]}` | {number(s['mean']) if s.get('mean') is not None else '—'} "
        f"| {s.get('level')} | {_run_link(s.get('run_id'), run_url)} |"
        for s in bisection.steps
    ]
    return [
        f"<details><summary>{summary}</summary>",
        "",
        f"| commit | {code(bisection.metric, in_table=True)} | level | run |",
        "|---|---|---|---|",
        *rows,
        "",
        "</details>",
    ]
