"""What a job needs from a runner, as one comparable value: its shape.

Jobs of one shape are interchangeable to the scheduler, so it decides per shape, not per
job: which runners could ever take it, which have room now. A lab's queue holds thousands
of jobs but a handful of shapes (a sweep's instances share one), which is what keeps a
scheduling pass flat in the queue's length. The shape is stored on the pending job (as
canonical JSON, indexed) when the scheduler first sees it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from ..db.models import Job


@dataclass(frozen=True)
class Shape:
    labels: tuple[str, ...]
    needs: str = "host"  # "container": the job names an image
    trusted: bool = True  # False: a fork's code, for isolating runners only
    gpus: int = 0
    gpu_memory_bytes: int = 0  # each of its GPUs has at least this much
    cpus: float = 0.0
    memory_bytes: int = 0

    def key(self) -> str:
        return json.dumps(
            [
                list(self.labels),
                self.needs,
                self.trusted,
                self.gpus,
                self.gpu_memory_bytes,
                self.cpus,
                self.memory_bytes,
            ],
            separators=(",", ":"),
        )

    @staticmethod
    def from_key(key: str) -> Shape:
        return _from_key(key)

    def describe(self) -> str:
        """`[gpu, a100] and ≥ 4 GPUs of ≥ 40 GiB`: what a runner must have."""
        return f"[{', '.join(self.labels)}]" + self.wants()

    def wants(self) -> str:
        """` and ≥ 4 GPUs of ≥ 40 GiB`: what it declares beyond labels ("" if nothing)."""
        wants = []
        if self.gpus:
            gpus = f"≥ {self.gpus} GPU{'s' if self.gpus > 1 else ''}"
            if self.gpu_memory_bytes:
                gpus += f" of ≥ {format_bytes(self.gpu_memory_bytes)}"
            wants.append(gpus)
        if self.cpus:
            wants.append(f"≥ {self.cpus:g} CPUs")
        if self.memory_bytes:
            wants.append(f"≥ {format_bytes(self.memory_bytes)} of memory")
        return " and " + ", ".join(wants) if wants else ""


@functools.lru_cache(maxsize=4096)
def _from_key(key: str) -> Shape:
    """Cached: a pass reads the same few keys on thousands of rows."""
    labels, needs, trusted, gpus, gpu_memory, cpus, memory = json.loads(key)
    return Shape(tuple(labels), needs, trusted, gpus, gpu_memory, float(cpus), memory)


def shape_of(job: Job, *, trusted: bool) -> Shape:
    return shape_from(job.spec, job.runs_on, trusted=trusted)


def shape_from(spec: dict[str, Any], runs_on: list[str], *, trusted: bool) -> Shape:
    """The shape of a job from its stored spec (a planned JobInstance) and labels."""
    job: dict[str, Any] = spec.get("job") or {}
    resources: dict[str, Any] = job.get("resources") or {}
    gpus = resources.get("gpus", 0)
    return Shape(
        labels=tuple(dict.fromkeys(runs_on)),  # as written: messages quote them
        needs="container" if job.get("container") else "host",
        trusted=trusted,
        gpus=gpus if isinstance(gpus, int) and not isinstance(gpus, bool) and gpus > 0 else 0,
        gpu_memory_bytes=_whole(resources.get("gpu-memory")),
        cpus=float(_number(resources.get("cpus"))),
        memory_bytes=_whole(resources.get("memory")),
    )


def max_parallel_of(job: Job) -> int | None:
    """`strategy.max-parallel` of the job's matrix, if it has one."""
    strategy = (job.spec.get("job") or {}).get("strategy") or {}
    limit = strategy.get("max-parallel")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def format_bytes(size: int) -> str:
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return 0.0
    return float(value)


def _whole(value: Any) -> int:
    return int(_number(value))
