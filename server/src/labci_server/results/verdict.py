"""The verdict of a context whose jobs are all terminal: its outcome judged against a baseline.

- A job that did not pass keeps the state and description of its outcome (`groups`).
- A passing context whose workflow compares metrics but that reported none of them, or
  none of a gated one, is an `error`: there is nothing to judge.
- Otherwise each metric is compared with the baseline (`compare`): `failure` when a
  metric with `gate: true` regressed, `success` otherwise.
- No baseline: for a pull request with `metrics.baseline: auto` the base commit is
  measured once (`autobase`) and the verdict waits for it (phase `awaiting_baseline`,
  the status stays pending); else `success` with the values and "no baseline".

The verdict and its table (`details`, JSON) are what the status, the PR comment, the run
page and the badges show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec import Compare, JobInstance

from ..db.models import Event, Job, Run
from . import autobase, seeds
from .adaptive import look_alpha, looks_note, wants_more_seeds
from .baseline import (
    Baseline,
    find_baseline,
    hardware_of,
    measuring_at_base,
    metric_history,
    samples_of,
)
from .compare import DEFAULT_ALPHA, MetricResult, compare_metrics, regressions
from .describe import compose
from .groups import Finished, context_verdict


@dataclass(frozen=True)
class Judgement:
    state: str  # the commit status state; "pending" while awaiting a baseline
    description: str
    phase: str = "final"  # final | awaiting_baseline
    baseline_sha: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    compare: dict[str, Compare]
    baseline: str  # auto | existing
    alpha: float = DEFAULT_ALPHA
    max_repeats: int | None = None  # adaptive repeats: seeds in all, at most

    @classmethod
    def of(cls, members: list[Job]) -> Rules:
        metrics = JobInstance.model_validate(members[0].spec).job.metrics
        if metrics is None:
            return cls({}, "auto")
        return cls(dict(metrics.compare), metrics.baseline, metrics.alpha, metrics.max_repeats)


async def judge(
    session: AsyncSession,
    *,
    run: Run,
    event: Event | None,
    context: str,
    members: list[Job],
    finished: list[Finished],
    metrics: dict[int, dict[str, float]],
) -> Judgement:
    state, description = context_verdict(finished)
    head = samples_of(members, metrics)
    details = _details(run, context, members, head)
    ran = [job for job in members if job.state == "success"]
    rules = Rules.of(members)
    if state != "success" or not ran or not (head or rules.compare):
        return Judgement(state, description, details=details)
    unreported = [name for name, rule in rules.compare.items() if rule.gate and name not in head]
    if rules.compare and not head:
        names = ", ".join(sorted(rules.compare))
        return Judgement("error", f"no metrics: the job reported none of {names}", details=details)
    if unreported:
        missing = ", ".join(sorted(unreported))
        return Judgement("error", f"gated metrics missing: {missing}", details=details)
    hardware = hardware_of(ran)
    details["hardware"] = hardware.describe()
    baseline = await find_baseline(
        session, run=run, event=event, context=context, hardware=hardware
    )
    if baseline is None:
        return await _without_baseline(session, run, event, context, rules, head, details)
    adaptive = rules.max_repeats is not None and run.trigger not in NEVER_EXTENDED
    look = 1
    if adaptive:
        own = await seeds.status(session, run_id=run.id or 0, context=context)
        base = await seeds.status(session, run_id=baseline.measured.run.id or 0, context=context)
        look = 2 if own.asked else 1
        for request, sha in ((own, run.commit_sha), (base, baseline.measured.run.commit_sha)):
            if request.asked and not request.settled:
                return _adding_seeds(head, rules, sha, details, "waiting for the added seeds")
    history = await metric_history(
        session, run=run, event=event, context=context, exclude_run_id=baseline.measured.run.id
    )
    alpha = look_alpha(rules.alpha, adaptive=adaptive)
    results = compare_metrics(
        baseline.measured.samples, head, rules.compare, history=history, alpha=alpha
    )
    details["baseline"] = _baseline_details(baseline)
    details["metrics"] = [metric_row(r) for r in results]
    details["decision"] = decision_details(results, rules.alpha)
    if adaptive and look == 1 and rules.max_repeats and wants_more_seeds(results):
        upto = rules.max_repeats
        provider = event.provider if event is not None else "git"
        for side in (run, baseline.measured.run):
            await seeds.request(session, run=side, provider=provider, context=context, upto=upto)
        note = f"adding seeds up to {upto} on both sides"
        details["decision"]["looks"] = looks_note(rules.alpha, 1, extending=True)
        return _adding_seeds(head, rules, run.commit_sha, details, note, results)
    if adaptive:
        details["decision"]["looks"] = looks_note(rules.alpha, look)
    note = None if baseline.same_hardware else "baseline on other hardware"
    failed = bool(regressions(results))
    return Judgement("failure" if failed else "success", compose(results, note), details=details)


# A baseline measurement never asks for seeds itself: the pull request it serves does.
NEVER_EXTENDED = ("baseline",)


def _adding_seeds(
    head: dict[str, list[float]],
    rules: Rules,
    sha: str,
    details: dict[str, Any],
    note: str,
    results: list[MetricResult] | None = None,
) -> Judgement:
    """Pending while seeds are added: judged again when they are in (`awaiting_baseline`
    at the commit whose run is still measuring, which the reconciler also retries)."""
    shown = results if results is not None else compare_metrics({}, head, rules.compare)
    return Judgement(
        "pending",
        compose(shown, note, compared=results is not None),
        phase="awaiting_baseline",
        baseline_sha=sha,
        details=details,
    )


async def _without_baseline(
    session: AsyncSession,
    run: Run,
    event: Event | None,
    context: str,
    rules: Rules,
    head: dict[str, list[float]],
    details: dict[str, Any],
) -> Judgement:
    results = compare_metrics({}, head, rules.compare)
    details["metrics"] = [metric_row(r) for r in results]
    running = await measuring_at_base(session, run=run, event=event, context=context)
    if rules.compare and running:
        note = f"waiting for the baseline at {running[:7]}"
        details["no_baseline"] = "the base commit's run of this job has not finished yet"
        return Judgement(
            "pending",
            compose(results, note, compared=False),
            phase="awaiting_baseline",
            baseline_sha=running,
            details=details,
        )
    if rules.compare and rules.baseline == "auto" and event is not None:
        progress = await autobase.progress(session, run=run, event=event, context=context)
        if progress.waiting:
            details["no_baseline"] = progress.note
            note = f"measuring the baseline at {progress.sha[:7]}"
            return Judgement(
                "pending",
                compose(results, note, compared=False),
                phase="awaiting_baseline",
                baseline_sha=progress.sha,
                details=details,
            )
        if progress.note:
            details["no_baseline"] = progress.note
            return Judgement(
                "success", compose(results, "no baseline", compared=False), details=details
            )
    details["no_baseline"] = _why_none(run, event)
    note = "no baseline" if rules.compare else None  # only what is judged needs one
    return Judgement("success", compose(results, note, compared=False), details=details)


def _why_none(run: Run, event: Event | None) -> str:
    if run.trigger == "pull_request" and event is not None:
        where = f"{(event.base_sha or '')[:7]} or on {event.base_branch}"
        return f"no finished result of this job at the base commit {where}"
    if run.trigger == "push":
        if event is None or not event.base_sha or set(event.base_sha) == {"0"}:
            return "a new branch: there is no previous commit to compare with"
        return f"no finished result of this job at the previous commit {event.base_sha[:7]}"
    if run.trigger == "baseline":
        return "this run is itself a baseline"
    return f"no earlier result of this job on {run.branch}"


def metric_row(result: MetricResult) -> dict[str, Any]:
    def side(summary: Any) -> dict[str, Any] | None:
        return (
            None if summary is None else {"n": summary.n, "mean": summary.mean, "std": summary.std}
        )

    return {
        "name": result.name,
        "goal": result.goal,
        "gate": result.gate,
        "base": side(result.base),
        "head": side(result.head),
        "delta": result.delta,
        "delta_pct": result.delta_pct,
        "interval": list(result.interval) if result.interval else None,
        "interval_level": result.interval_level,
        "p_value": result.p_value,
        "p_adjusted": result.p_adjusted,
        "margin": result.margin,
        "method": result.method,
        "verdict": result.verdict,
        "explanation": result.explanation,
    }


def decision_details(results: list[MetricResult], alpha: float) -> dict[str, Any]:
    """How the status as a whole was decided: the comment's footer says it."""
    family = sum(1 for r in results if r.gate and r.family)
    unverified = sum(1 for r in results if r.gate and r.verdict == "unverified")
    return {"alpha": alpha, "family": family, "unverified": unverified}


def _baseline_details(baseline: Baseline) -> dict[str, Any]:
    found = baseline.measured
    return {
        "run_id": found.run.id,
        "commit": found.run.commit_sha,
        "branch": found.run.branch,
        "source": baseline.source,
        "same_hardware": baseline.same_hardware,
        "hardware": found.hardware.describe(),
    }


def _details(
    run: Run, context: str, members: list[Job], head: dict[str, list[float]]
) -> dict[str, Any]:
    return {
        "workflow": run.workflow_name,
        "context": context,
        "jobs": [
            {"id": job.id, "key": job.job_key, "state": job.state, "reason": job.reason}
            for job in members
        ],
        "head": {name: values for name, values in sorted(head.items())},
        "metrics": [],
        "baseline": None,
    }
