"""Two runs side by side (the web UI's compare page): for each check both ran, the same
comparison a pull request's verdict makes (`compare.compare_metrics`, with the second
run's rules: its gates, tolerances and level), and both runs' reproducibility records with
the fields that differ marked. Any two runs, of any branches: "is run B better than run A,
and were they measured alike?"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..context import ServerContext
from ..db.models import Job
from ..db.queries.runs import get_run, jobs_of_run, metrics_of_jobs
from ..errors import NotFound
from .baseline import hardware_of, samples_of
from .compare import compare_metrics
from .verdict import Rules, decision_details, metric_row


@dataclass
class ContextComparison:
    context: str
    rows: list[dict[str, Any]]
    decision: dict[str, Any]
    hardware: tuple[str, str]
    # Record fields of the two runs' first successful jobs: (name, a's, b's, differs).
    record: list[tuple[str, str, str, bool]] = field(default_factory=list)


def _groups(jobs: list[Job]) -> dict[str, list[Job]]:
    found: dict[str, list[Job]] = {}
    for job in jobs:
        found.setdefault(job.context, []).append(job)
    return found


def _shown(value: Any) -> str:
    return "—" if value is None or value == [] or value == {} else str(value)


def record_rows(
    a: dict[str, Any] | None, b: dict[str, Any] | None
) -> list[tuple[str, str, str, bool]]:
    a, b = a or {}, b or {}
    # Times always differ and say nothing about how a number was made.
    keys = sorted(k for k in set(a) | set(b) if not k.endswith(("_at", "_s")))
    return [(k, _shown(a.get(k)), _shown(b.get(k)), a.get(k) != b.get(k)) for k in keys]


async def compare_runs(sc: ServerContext, a_id: int, b_id: int) -> dict[str, Any]:
    async with sc.sessions() as session:
        a, b = await get_run(session, a_id), await get_run(session, b_id)
        if a is None or b is None:
            raise NotFound(f"run {a_id if a is None else b_id} does not exist")
        jobs_a, jobs_b = await jobs_of_run(session, a_id), await jobs_of_run(session, b_id)
        metrics = await metrics_of_jobs(session, [j.id or 0 for j in jobs_a + jobs_b])
    groups_a, groups_b = _groups(jobs_a), _groups(jobs_b)
    both = sorted(set(groups_a) & set(groups_b))
    contexts = []
    for context in both:
        rules = Rules.of(groups_b[context])
        results = compare_metrics(
            samples_of(groups_a[context], metrics),
            samples_of(groups_b[context], metrics),
            rules.compare,
            alpha=rules.alpha,
        )
        ran_a = [j for j in groups_a[context] if j.state == "success"]
        ran_b = [j for j in groups_b[context] if j.state == "success"]
        contexts.append(
            ContextComparison(
                context=context,
                rows=[metric_row(r) for r in results],
                decision=decision_details(results, rules.alpha),
                hardware=(hardware_of(ran_a).describe(), hardware_of(ran_b).describe()),
                record=record_rows(
                    ran_a[0].record if ran_a else None, ran_b[0].record if ran_b else None
                ),
            )
        )
    return {
        "a": a,
        "b": b,
        "contexts": contexts,
        "only_a": sorted(set(groups_a) - set(groups_b)),
        "only_b": sorted(set(groups_b) - set(groups_a)),
    }
