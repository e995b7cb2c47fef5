"""GPUs a job wants, and the GPUs its runner's queued and running jobs hold.

A runner's inventory comes with its heartbeats (each GPU with its health and memory);
placement (scheduling/placement.py) gives a job exact ids of healthy GPUs no other job
holds, and the runner pins the job to them — never "all GPUs" on a shared machine.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..db.models import Job


def gpus_wanted(job: Job) -> int:
    resources = job.spec.get("job", {}).get("resources") or {}
    wanted = resources.get("gpus", 0)
    return wanted if isinstance(wanted, int) and wanted > 0 else 0


def held_gpu_ids(jobs: Iterable[Job]) -> dict[int, set[str]]:
    """GPU ids held per runner by the given (queued or running) jobs."""
    held: dict[int, set[str]] = {}
    for job in jobs:
        if job.runner_id is not None and job.gpu_ids:
            held.setdefault(job.runner_id, set()).update(job.gpu_ids)
    return held
