"""A job attempt's record: what a reader needs to rerun or trust its number.

Commit, matrix values, host and runner, start and end; what ran it (the executor, and for
a container the image by digest and the effective limits); the GPUs with their model,
driver and CUDA versions, and how busy they were.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from labci_runner.client import Assignment
from labci_runner.executors.base import JobOutcome
from labci_runner.gpus import GpuSampler, RunnerGpus
from labci_spec import JobInstance


def job_record(
    runner_name: str,
    gpus: RunnerGpus | None,
    assignment: Assignment,
    instance: JobInstance,
    outcome: JobOutcome,
    sampler: GpuSampler | None,
    began: float,
) -> dict[str, Any]:
    """What a reader needs to rerun or trust the number, as the runner saw it."""
    record: dict[str, Any] = {
        "runner": runner_name,
        "host": socket.gethostname(),
        "commit": assignment.commit_sha,
        "matrix": instance.matrix,
        "started_at": began,
        "finished_at": time.time(),
        **outcome.details,
    }
    if assignment.gpu_ids and gpus is not None:
        record["gpus"] = gpus.describe(assignment.gpu_ids)
        record["driver_version"] = gpus.inventory.driver_version
        record["cuda_version"] = gpus.inventory.cuda_version
    if sampler is not None:
        record.update(sampler.summary())
    return record
