"""Where a job goes: the runners that have room for its shape now, and the best fit.

A runner's room is what its heartbeats say it has (slots, healthy GPUs with their memory,
CPUs, memory) less what its queued and running jobs hold. A job fits a runner that has all
of its `runs-on` labels, the capability it needs (containers; isolation for a fork's code)
and room for all it declares. GPUs go by exact id, never one to two jobs.

Best fit, not first fit: a GPU job goes where it leaves the fewest GPUs free (and takes the
smallest GPUs that are big enough), so a 4- or 8-GPU job finds a whole machine rather than
one that 1-GPU jobs have nibbled at; a job without GPUs prefers runners without free GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..db.models import Job, Runner
from .shapes import Shape, format_bytes, shape_from

# Memory as declared (`16G` is 16 GiB) against memory as reported: an "80 GB" GPU reports
# 81,559 MiB and a "64 GB" machine about 63 GiB. A job fits in what is within this share
# of its need, so `gpu-memory: 80G` runs on an 80 GB GPU.
MEMORY_TOLERANCE = 0.95


def enough(have: int | float, need: int | float) -> bool:
    return have >= need * MEMORY_TOLERANCE


@dataclass(frozen=True)
class Gpu:
    id: str
    memory_bytes: int | None  # None: not reported, taken as big enough


@dataclass
class Room:
    """What one runner can still take in this pass."""

    runner: Runner
    slots: int
    gpus: list[Gpu] = field(default_factory=list)
    cpus: float | None = None  # None: the runner does not report it; not checked
    memory_bytes: int | None = None

    def gpus_fitting(self, shape: Shape) -> list[Gpu]:
        return [
            g
            for g in self.gpus
            if g.memory_bytes is None or enough(g.memory_bytes, shape.gpu_memory_bytes)
        ]

    def fits(self, shape: Shape) -> bool:
        return (
            self.slots > 0
            and can_run(self.runner, shape)
            and (self.cpus is None or self.cpus >= shape.cpus)
            and (self.memory_bytes is None or enough(self.memory_bytes, shape.memory_bytes))
            and (shape.gpus == 0 or len(self.gpus_fitting(shape)) >= shape.gpus)
        )

    def take(self, shape: Shape) -> list[str]:
        """Hold room for one job of `shape` (which fits); the GPU ids it gets."""
        chosen = sorted(self.gpus_fitting(shape), key=lambda g: g.memory_bytes or 0)
        chosen = chosen[: shape.gpus]
        taken = {g.id for g in chosen}
        self.gpus = [g for g in self.gpus if g.id not in taken]
        self.slots -= 1
        if self.cpus is not None:
            self.cpus -= shape.cpus
        if self.memory_bytes is not None:
            self.memory_bytes -= shape.memory_bytes
        # The runner's own order (nvidia-smi's index), whatever the sizes chose.
        return [g.id for g in chosen]


def can_run(runner: Runner, shape: Shape) -> bool:
    """Labels and capabilities (what the heartbeats say it can do now), not room."""
    capabilities = runner.capabilities or {}
    return (
        set(shape.labels) <= set(runner.labels)
        and bool(capabilities.get(shape.needs, shape.needs == "host"))
        and (shape.trusted or bool(capabilities.get("untrusted", False)))
    )


# A pass asks for each runner's inventory many times (its room, then once per GPU shape);
# parsed once per inventory object. The entry holds the object, so its id is not reused.
_PARSED: dict[tuple[int, bool], tuple[Any, list[Gpu]]] = {}
_PARSED_MAX = 4096


def gpu_inventory(runner: Runner, *, healthy_only: bool) -> list[Gpu]:
    key = (id(runner.gpus), healthy_only)
    entry = _PARSED.get(key)
    if entry is not None and entry[0] is runner.gpus:
        return entry[1]
    found = _parse_inventory(runner, healthy_only=healthy_only)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[key] = (runner.gpus, found)
    return found


def _parse_inventory(runner: Runner, *, healthy_only: bool) -> list[Gpu]:
    found = []
    for gpu in (runner.gpus or {}).get("gpus") or []:
        if not isinstance(gpu, dict) or "id" not in gpu:
            continue
        if healthy_only and not gpu.get("healthy", True):
            continue
        mib = gpu.get("memory_mib")
        size = int(mib) * 2**20 if isinstance(mib, int | float) and mib > 0 else None
        found.append(Gpu(str(gpu["id"]), size))
    return found


def _size(runner: Runner, name: str) -> float | None:
    value = (runner.resources or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


@dataclass(frozen=True)
class Held:
    """What one queued or running job holds on its runner."""

    runner_id: int
    gpu_ids: tuple[str, ...]
    shape: Shape


def held_from_rows(
    rows: Iterable[tuple[int, list[str], str | None, dict[str, Any] | None]],
) -> list[Held]:
    """`Held` records of (runner, GPU ids, shape key, spec) rows (queue_queries.held)."""
    return [
        Held(
            runner_id,
            tuple(gpu_ids),
            Shape.from_key(key) if key else shape_from(spec or {}, [], trusted=True),
        )
        for runner_id, gpu_ids, key, spec in rows
    ]


def held_by(jobs: Iterable[Job]) -> list[Held]:
    """`Held` records of job rows (their shape: indexed, else read from their spec)."""
    return held_from_rows(
        (job.runner_id, job.gpu_ids or [], job.shape, job.spec)
        for job in jobs
        if job.runner_id is not None
    )


def rooms(runners: Sequence[Runner], held: Iterable[Held]) -> dict[int, Room]:
    """The room of each runner given what its queued and running jobs hold."""
    held = list(held)
    gpus_held: dict[int, set[str]] = {}
    for h in held:
        gpus_held.setdefault(h.runner_id, set()).update(h.gpu_ids)
    found: dict[int, Room] = {}
    for runner in runners:
        cpus = _size(runner, "cpus")
        memory = _size(runner, "memory_bytes")
        taken = gpus_held.get(runner.id or 0, set())
        found[runner.id or 0] = Room(
            runner=runner,
            slots=runner.slots,
            gpus=[g for g in gpu_inventory(runner, healthy_only=True) if g.id not in taken],
            cpus=cpus,
            memory_bytes=int(memory) if memory is not None else None,
        )
    for h in held:
        room = found.get(h.runner_id)
        if room is None:
            continue
        room.slots -= 1
        if room.cpus is not None:
            room.cpus -= h.shape.cpus
        if room.memory_bytes is not None:
            room.memory_bytes -= h.shape.memory_bytes
    return found


def best_fit(shape: Shape, candidates: Iterable[Room]) -> Room | None:
    """The room a job of `shape` should take, or None when none fits."""
    best: tuple[Any, ...] | None = None
    chosen = None
    for room in candidates:
        if not room.fits(shape):
            continue
        if shape.gpus:
            # Leave the fewest GPUs free; then the fewest free slots; then the lowest id.
            rank: tuple[Any, ...] = (
                len(room.gpus) - shape.gpus,
                room.slots,
                room.runner.id or 0,
            )
        else:
            # Keep GPU machines for GPU jobs; then spread over the freest runners.
            rank = (len(room.gpus), -room.slots, room.runner.id or 0)
        if best is None or rank < best:
            best, chosen = rank, room
    return chosen


def could_ever_run(runner: Runner, shape: Shape) -> bool:
    """Whether the runner, empty, could take the job: labels and its size (all its GPUs,
    healthy now or not; what it has not said yet counts as enough). Capabilities are not
    asked: a Docker engine can come back."""
    if not set(shape.labels) <= set(runner.labels):
        return False
    cpus, memory = _size(runner, "cpus"), _size(runner, "memory_bytes")
    if cpus is not None and cpus < shape.cpus:
        return False
    if memory is not None and not enough(memory, shape.memory_bytes):
        return False
    if shape.gpus:
        if runner.gpus is None and runner.resources is None:
            # Registered, and no heartbeat has said what it has yet (each says its size,
            # and its GPUs if it has any): it may have the GPUs.
            return True
        inventory = runner.gpus or {}
        if inventory.get("problems") and not inventory.get("gpus"):
            return True  # it could not read its GPUs (a driver down): they may come back
        gpus = gpu_inventory(runner, healthy_only=False)
        big = [
            g
            for g in gpus
            if g.memory_bytes is None or enough(g.memory_bytes, shape.gpu_memory_bytes)
        ]
        return len(big) >= shape.gpus
    return True


def never_placeable(shape: Shape, registered: Sequence[Runner]) -> str | None:
    """Why no registered runner could ever take a job of `shape`, or None if one could.
    With no runner registered at all nothing is decided: the fleet is not there yet."""
    if not registered or any(could_ever_run(r, shape) for r in registered):
        return None
    labelled = [r for r in registered if set(shape.labels) <= set(r.labels)]
    reason = f"no runner with {shape.describe()}"
    if not labelled:
        return f"no runner with [{', '.join(shape.labels)}]"
    biggest = []
    if shape.gpus:
        most = max(len(_big_gpus(r, shape)) for r in labelled)
        size = f" of ≥ {format_bytes(shape.gpu_memory_bytes)}" if shape.gpu_memory_bytes else ""
        biggest.append(f"{most} GPU{'s' if most != 1 else ''}{size}")
    if shape.cpus:
        most_cpus = max((_size(r, "cpus") or 0) for r in labelled)
        biggest.append(f"{most_cpus:g} CPUs")
    if shape.memory_bytes:
        most_memory = max((_size(r, "memory_bytes") or 0) for r in labelled)
        biggest.append(f"{format_bytes(int(most_memory))} of memory")
    return reason + (f" (the largest has {', '.join(biggest)})" if biggest else "")


def _big_gpus(runner: Runner, shape: Shape) -> list[Gpu]:
    return [
        g
        for g in gpu_inventory(runner, healthy_only=False)
        if g.memory_bytes is None or enough(g.memory_bytes, shape.gpu_memory_bytes)
    ]
