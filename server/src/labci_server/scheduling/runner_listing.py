"""Every registered runner as people see it: the runners page, `GET /api/v1/runners` and
`labci runners list` read the same rows. State from heartbeats (online within a lease,
offline after, revoked), an administrator's drain, labels, executors, version, slots in
use, the jobs it holds and each GPU with the job holding it.

Runners serve every repository: a job of a repository the reader cannot read is listed as
held, without its name or run (`visible`, None for those who read everything)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..db.models import Job, Runner
from ..db.queries.jobs import active_jobs
from ..db.queries.runners import all_runners
from ..db.queries.runs import runs_by_id
from .shapes import format_bytes


def runner_state(runner: Runner, now: float, lease_s: float) -> str:
    if runner.revoked_at is not None:
        return "revoked"
    seen = runner.last_heartbeat_at
    # Offline after a lease without a heartbeat: its jobs are reaped then.
    return "online" if seen is not None and now - seen <= lease_s else "offline"


def executors(runner: Runner) -> list[str]:
    kinds = [name for name, able in sorted((runner.capabilities or {}).items()) if able]
    return [{"host": "process", "container": "docker"}.get(k, k) for k in kinds]


@dataclass
class HeldJob:
    id: int
    state: str
    key: str | None  # None: a job of a repository the reader cannot read
    run_id: int | None


@dataclass
class RunnerRow:
    name: str
    state: str  # online | offline | revoked
    labels: list[str]
    executors: list[str]
    version: str | None
    slots: int
    jobs: list[HeldJob]
    gpus: list[dict[str, Any]]  # the heartbeat's inventory, each with the job holding it
    driver_version: str | None
    cuda_version: str | None
    last_heartbeat_at: float | None
    cpus: float | None  # what jobs may use in all, as the heartbeats say (None: not said)
    memory_bytes: int | None
    drained_at: float | None
    drained_by: str | None
    busy: int = field(init=False)

    def __post_init__(self) -> None:
        self.busy = len(self.jobs)

    def size(self) -> str:
        """`16 CPUs · 64 GiB`: what the runner offers jobs."""
        parts = []
        if self.cpus:
            parts.append(f"{self.cpus:g} CPUs")
        if self.memory_bytes:
            parts.append(format_bytes(self.memory_bytes))
        return " · ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def runner_rows(
    sessions: Any, *, lease_s: float, visible: set[int] | None
) -> list[RunnerRow]:
    """Every runner, revoked ones last, then by name."""
    now = time.time()
    async with sessions() as session:
        runners = await all_runners(session)
        held = await active_jobs(session)
        runs = await runs_by_id(session, {job.run_id for job in held})
    jobs_of: dict[int, list[Job]] = {}
    for job in held:
        if job.runner_id is not None:
            jobs_of.setdefault(job.runner_id, []).append(job)

    def shown(job: Job) -> HeldJob:
        run = runs.get(job.run_id)
        readable = run is not None and (visible is None or run.repository_id in visible)
        return HeldJob(
            id=job.id or 0,
            state=job.state,
            key=job.job_key if readable else None,
            run_id=job.run_id if readable else None,
        )

    rows = []
    for runner in runners:
        mine = [shown(job) for job in jobs_of.get(runner.id or 0, [])]
        holder = {
            gpu: held_job
            for job, held_job in zip(jobs_of.get(runner.id or 0, []), mine, strict=True)
            for gpu in job.gpu_ids or []
        }
        inventory = runner.gpus or {}
        rows.append(
            RunnerRow(
                name=runner.name,
                state=runner_state(runner, now, lease_s),
                labels=list(runner.labels),
                executors=executors(runner),
                version=runner.version,
                slots=runner.slots,
                jobs=mine,
                gpus=[
                    {**gpu, "job": holder.get(str(gpu.get("id")))}
                    for gpu in inventory.get("gpus") or []
                    if isinstance(gpu, dict)
                ],
                driver_version=inventory.get("driver_version"),
                cuda_version=inventory.get("cuda_version"),
                last_heartbeat_at=runner.last_heartbeat_at,
                cpus=(runner.resources or {}).get("cpus"),
                memory_bytes=(runner.resources or {}).get("memory_bytes"),
                drained_at=runner.drained_at,
                drained_by=runner.drained_by,
            )
        )
    return rows
