"""The GPUs of a runner: what it has, whether each is fit to take work, how busy it is.

Sources, first that answers:
1. `LABCI_RUNNER_GPUS`: `0,1` (ids only) or a JSON list of
   `{"id": "0", "model": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920, "uuid": "GPU-…"}` —
   to give a runner part of a machine, or to test without GPUs;
2. NVML, through `nvidia-ml-py`, when the driver's library is present;
3. `nvidia-smi`'s CSV output, when only the command is;
4. none.

Before a job starts on its assigned GPUs, `check_free` looks for what most often breaks
GPU CI: compute processes a previous job left behind, and memory already taken. A GPU
found unfit is reported (every heartbeat carries the inventory with each GPU's health)
and gets no work until it is fit again. While a job runs, `GpuSampler` samples
utilisation and memory every few seconds (NVML or nvidia-smi only).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import shutil
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SMI_FIELDS = "index,uuid,name,memory.total,memory.used,utilization.gpu,driver_version"
SMI_TIMEOUT_S = 10.0
MIN_FREE_MIB = 512  # a GPU with less free memory than this before a job is not fit
# `gpu-memory: 80G` (80 GiB) is met by an "80 GB" GPU's 81,559 MiB: declared sizes are
# powers of 1024 and cards report a little less. The server places with the same share
# (labci_server/scheduling/placement.py, MEMORY_TOLERANCE).
MEMORY_TOLERANCE = 0.95


@dataclass(frozen=True)
class Gpu:
    """One GPU as the scheduler sees it; `id` is what jobs are pinned by (index or UUID)."""

    id: str
    model: str | None = None
    memory_mib: int | None = None
    uuid: str | None = None


@dataclass(frozen=True)
class GpuState:
    """A GPU now; None where the source cannot tell."""

    id: str
    memory_used_mib: int | None = None
    utilization_pct: int | None = None
    processes: int | None = None


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None
    source: str = "none"
    problems: tuple[str, ...] = ()

    def as_json(
        self, unhealthy: dict[str, str] | None = None, in_use: set[str] | None = None
    ) -> dict[str, Any]:
        """What a heartbeat carries: each GPU with its health, and whether a job holds it."""
        bad = unhealthy or {}
        used = in_use or set()
        return {
            "gpus": [
                {
                    **asdict(g),
                    "healthy": g.id not in bad,
                    "problem": bad.get(g.id),
                    "in_use": g.id in used,
                }
                for g in self.gpus
            ],
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "source": self.source,
            "problems": list(self.problems),
        }


class GpuProbe(Protocol):
    def inventory(self) -> Inventory: ...

    def states(self, ids: Sequence[str]) -> list[GpuState]:
        """The current state of the GPUs with these ids (blocking; call from a thread)."""
        ...


def parse_gpus_setting(text: str) -> list[Gpu]:
    """`LABCI_RUNNER_GPUS`: `0,1`, or a JSON list of objects with at least an `id`."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"LABCI_RUNNER_GPUS is not valid JSON: {exc}") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
            raise ValueError('LABCI_RUNNER_GPUS: expected a list of objects with an "id"')
        return [
            Gpu(
                id=str(i["id"]),
                model=i.get("model"),
                memory_mib=int(i["memory_mib"]) if i.get("memory_mib") is not None else None,
                uuid=i.get("uuid"),
            )
            for i in items
        ]
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if len(set(ids)) != len(ids):
        raise ValueError("LABCI_RUNNER_GPUS lists a GPU twice")
    return [Gpu(id=gpu_id) for gpu_id in ids]


def parse_nvidia_smi(text: str) -> tuple[list[Gpu], list[GpuState], str | None]:
    """`nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits` output."""
    gpus, states, driver = [], [], None
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 7:
            raise ValueError(f"unexpected nvidia-smi row ({len(row)} fields): {','.join(row)!r}")
        index, uuid, name, total, used, util, driver = (cell.strip() for cell in row)
        gpus.append(Gpu(id=index, model=name, memory_mib=_number(total), uuid=uuid or None))
        states.append(
            GpuState(id=index, memory_used_mib=_number(used), utilization_pct=_number(util))
        )
    return gpus, states, driver


def _number(text: str) -> int | None:
    cleaned = text.replace("MiB", "").replace("%", "").strip()
    try:
        return int(float(cleaned))
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


@dataclass(frozen=True)
class StaticProbe:
    """GPUs named by LABCI_RUNNER_GPUS: nothing is measured."""

    gpus: tuple[Gpu, ...]

    def inventory(self) -> Inventory:
        return Inventory(gpus=self.gpus, source="LABCI_RUNNER_GPUS")

    def states(self, ids: Sequence[str]) -> list[GpuState]:
        return [GpuState(id=i) for i in ids]


@dataclass
class SmiProbe:
    """GPUs as `nvidia-smi` lists them."""

    command: str = "nvidia-smi"
    _driver: str | None = field(default=None, init=False)

    def _query(self) -> tuple[list[Gpu], list[GpuState], str | None]:
        done = subprocess.run(
            [self.command, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=SMI_TIMEOUT_S,
            check=True,
        )
        return parse_nvidia_smi(done.stdout)

    def inventory(self) -> Inventory:
        try:
            gpus, _, driver = self._query()
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return Inventory(source="nvidia-smi", problems=(f"nvidia-smi failed: {exc}",))
        return Inventory(gpus=tuple(gpus), driver_version=driver, source="nvidia-smi")

    def states(self, ids: Sequence[str]) -> list[GpuState]:
        try:
            _, states, _ = self._query()
        except (OSError, subprocess.SubprocessError, ValueError):
            return [GpuState(id=i) for i in ids]
        wanted = set(ids)
        return [s for s in states if s.id in wanted]


class NvmlProbe:
    """GPUs through NVML: inventory, versions, memory, utilisation, compute processes."""

    def __init__(self) -> None:
        import pynvml  # the bindings are pure Python; the driver's library may be missing

        pynvml.nvmlInit()  # raises NVMLError without a driver
        self._nvml = pynvml

    def inventory(self) -> Inventory:
        nvml = self._nvml
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                Gpu(
                    id=str(index),
                    model=_text(nvml.nvmlDeviceGetName(handle)),
                    memory_mib=int(memory.total // 2**20),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                )
            )
        cuda = nvml.nvmlSystemGetCudaDriverVersion()
        return Inventory(
            gpus=tuple(gpus),
            driver_version=_text(nvml.nvmlSystemGetDriverVersion()),
            cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}",
            source="nvml",
        )

    def states(self, ids: Sequence[str]) -> list[GpuState]:
        nvml = self._nvml
        states = []
        for gpu_id in ids:
            with contextlib.suppress(nvml.NVMLError, ValueError):
                handle = nvml.nvmlDeviceGetHandleByIndex(int(gpu_id))
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                states.append(
                    GpuState(
                        id=gpu_id,
                        memory_used_mib=int(memory.used // 2**20),
                        utilization_pct=int(util.gpu),
                        processes=len(processes),
                    )
                )
        return states


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover(setting: str | None) -> GpuProbe:
    """The first source that answers (see the module docstring)."""
    if setting is not None:
        return StaticProbe(tuple(parse_gpus_setting(setting)))
    try:
        return NvmlProbe()
    except Exception as exc:  # noqa: BLE001 — no bindings, no driver, no device: try the next
        logger.info("no NVML (%s); trying nvidia-smi", exc)
    if shutil.which("nvidia-smi"):
        return SmiProbe()
    return StaticProbe(())


def check_free(
    probe: GpuProbe, ids: Sequence[str], inventory: Inventory, *, need_mib: int | None = None
) -> dict[str, str]:
    """The assigned GPUs that are not fit to start a job on, with the reason."""
    sizes = {g.id: g.memory_mib for g in inventory.gpus}
    problems: dict[str, str] = {}
    for state in probe.states(ids):
        if state.processes:
            problems[state.id] = f"{state.processes} compute process(es) left on GPU {state.id}"
            continue
        total = sizes.get(state.id)
        if total is None or state.memory_used_mib is None:
            continue
        free = total - state.memory_used_mib
        needed = max(need_mib or 0, MIN_FREE_MIB)
        if free < max(int((need_mib or 0) * MEMORY_TOLERANCE), MIN_FREE_MIB):
            problems[state.id] = f"GPU {state.id} has {free} MiB free, {needed} MiB needed"
    return problems


@dataclass
class GpuSampler:
    """Samples the job's GPUs every `interval_s` while it runs; a summary for its record."""

    probe: GpuProbe
    ids: Sequence[str]
    interval_s: float = 5.0
    utilization: list[int] = field(default_factory=list)
    memory_peak_mib: int | None = None

    async def run(self) -> None:
        while True:
            for state in await asyncio.to_thread(self.probe.states, self.ids):
                if state.utilization_pct is not None:
                    self.utilization.append(state.utilization_pct)
                if state.memory_used_mib is not None:
                    self.memory_peak_mib = max(self.memory_peak_mib or 0, state.memory_used_mib)
            await asyncio.sleep(self.interval_s)

    def summary(self) -> dict[str, float | int | None]:
        mean = statistics.fmean(self.utilization) if self.utilization else None
        return {"gpu_util_mean": mean, "gpu_mem_peak_mib": self.memory_peak_mib}


@dataclass
class RunnerGpus:
    """A runner's GPUs while it runs: the probe, the inventory, and the GPUs found unfit."""

    probe: GpuProbe
    inventory: Inventory
    unhealthy: dict[str, str] = field(default_factory=dict)

    @property
    def measuring(self) -> bool:
        """Whether the probe sees usage at all (LABCI_RUNNER_GPUS names GPUs blindly)."""
        return not isinstance(self.probe, StaticProbe)

    def heartbeat_json(self, in_use: set[str] | None = None) -> dict[str, Any]:
        return self.inventory.as_json(self.unhealthy, in_use)

    async def heartbeat_now(self, in_use: set[str] | None = None) -> dict[str, Any]:
        """`heartbeat_json` with each GPU's utilisation and memory in use now, where the
        probe measures them (the runners page shows them)."""
        body = self.heartbeat_json(in_use)
        if not self.measuring:
            return body
        ids = [gpu.id for gpu in self.inventory.gpus]
        states = {state.id: state for state in await asyncio.to_thread(self.probe.states, ids)}
        for gpu in body["gpus"]:
            state = states.get(gpu["id"])
            gpu["utilization_pct"] = state.utilization_pct if state else None
            gpu["memory_used_mib"] = state.memory_used_mib if state else None
        return body

    def describe(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        by_id = {g.id: g for g in self.inventory.gpus}
        return [asdict(by_id.get(i, Gpu(i))) for i in ids]

    async def check(self, ids: Sequence[str], *, need_mib: int | None = None) -> dict[str, str]:
        """Check the GPUs a job is about to get; the unfit are remembered as unhealthy."""
        found = await asyncio.to_thread(
            check_free, self.probe, ids, self.inventory, need_mib=need_mib
        )
        self.unhealthy.update(found)
        return found

    async def recheck(self, in_use: set[str]) -> None:
        """GPUs marked unhealthy and not in use are looked at again: fit ones come back."""
        idle = [gpu_id for gpu_id in self.unhealthy if gpu_id not in in_use]
        if not idle:
            return
        still = await asyncio.to_thread(check_free, self.probe, idle, self.inventory)
        for gpu_id in idle:
            if gpu_id not in still:
                del self.unhealthy[gpu_id]
