"""Which GPUs a job gets: exact ids of its runner's healthy GPUs that no other job holds.

A runner's inventory comes with its heartbeats (each GPU with its health); the GPUs held
are those assigned to the runner's queued and running jobs. Jobs are pinned to the ids
chosen here — the runner never hands a job "all GPUs" on a shared machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..db.models import Job, Runner


def gpus_wanted(job: Job) -> int:
    resources = job.spec.get("job", {}).get("resources") or {}
    wanted = resources.get("gpus", 0)
    return wanted if isinstance(wanted, int) and wanted > 0 else 0


def healthy_gpu_ids(runner: Runner) -> list[str]:
    inventory = runner.gpus or {}
    return [
        str(gpu["id"])
        for gpu in inventory.get("gpus") or []
        if isinstance(gpu, dict) and "id" in gpu and gpu.get("healthy", True)
    ]


def free_gpu_ids(runner: Runner, held: Iterable[str]) -> list[str]:
    taken = set(held)
    return [gpu_id for gpu_id in healthy_gpu_ids(runner) if gpu_id not in taken]


def held_gpu_ids(jobs: Iterable[Job]) -> dict[int, set[str]]:
    """GPU ids held per runner by the given (queued or running) jobs."""
    held: dict[int, set[str]] = {}
    for job in jobs:
        if job.runner_id is not None and job.gpu_ids:
            held.setdefault(job.runner_id, set()).update(job.gpu_ids)
    return held


def choose_gpus(free: Mapping[int, list[str]], runner_id: int, count: int) -> list[str] | None:
    """The first `count` free ids of the runner, or None if it has fewer."""
    ids = free.get(runner_id, [])
    return list(ids[:count]) if len(ids) >= count else None
