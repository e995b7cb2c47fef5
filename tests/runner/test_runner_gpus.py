"""GPU inventory, fitness checks and sampling.

In CI (no GPU) the nvidia-smi path runs a real `nvidia-smi` executable that prints output
in nvidia-smi's format (tests/fixtures/nvidia-smi); `gpu`-marked tests use real NVML and
run only on a machine with NVIDIA GPUs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labci_runner.gpus import (
    Gpu,
    GpuSampler,
    GpuState,
    Inventory,
    RunnerGpus,
    SmiProbe,
    StaticProbe,
    check_free,
    discover,
    parse_gpus_setting,
    parse_nvidia_smi,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("0", [Gpu("0")]),
        ("0, 2", [Gpu("0"), Gpu("2")]),
        (
            '[{"id": "1", "model": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920}]',
            [Gpu("1", "NVIDIA A100-SXM4-80GB", 81920)],
        ),
        ('[{"id": "GPU-5f2a", "uuid": "GPU-5f2a"}]', [Gpu("GPU-5f2a", uuid="GPU-5f2a")]),
    ],
    ids=["empty", "one", "ids", "json", "by-uuid"],
)
def test_gpus_setting(text: str, expected: list[Gpu]) -> None:
    assert parse_gpus_setting(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,0", "lists a GPU twice"),
        ("[{", "not valid JSON"),
        ('[{"model": "x"}]', 'objects with an "id"'),
    ],
    ids=["twice", "bad-json", "no-id"],
)
def test_gpus_setting_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_gpus_setting(text)


@pytest.mark.parametrize(
    ("fixture", "count", "first", "driver", "busy"),
    [
        (
            "a100x8.csv",
            8,
            Gpu("0", "NVIDIA A100-SXM4-80GB", 81920, "GPU-5f2a9d1c-7a1e-3b6f-9c2d-1e8b4a7f0c11"),
            "580.159.04",
            GpuState("2", 71234, 97),
        ),
        (
            "workstation.csv",
            2,
            Gpu("0", "NVIDIA GeForce RTX 3090", 24576, "GPU-a7c1f2e3-1b2c-4d5e-8f9a-0b1c2d3e4f50"),
            "550.54.15",
            GpuState("0", 1187, 3),
        ),
        (
            "t4-na.csv",
            1,
            Gpu("0", "Tesla T4", 15360, "GPU-c9e3b4a5-3d4e-6f7a-0b1c-2d3e4f5a6b72"),
            "535.183.01",
            GpuState("0", 0, None),
        ),
    ],
    ids=["8xA100", "workstation", "utilisation-not-reported"],
)
def test_parse_nvidia_smi(fixture, count, first, driver, busy) -> None:
    gpus, states, found_driver = parse_nvidia_smi((FIXTURES / fixture).read_text())
    assert len(gpus) == len(states) == count
    assert gpus[0] == first
    assert found_driver == driver
    assert busy in states


def fake_smi(tmp_path: Path, fixture: str) -> str:
    """A real executable in nvidia-smi's place, printing recorded-format output."""
    tool = tmp_path / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\ncat {FIXTURES / fixture}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return str(tool)


def test_smi_probe_inventory_and_fitness(tmp_path: Path) -> None:
    probe = SmiProbe(command=fake_smi(tmp_path, "a100x8.csv"))
    inventory = probe.inventory()
    assert (len(inventory.gpus), inventory.driver_version, inventory.source) == (
        8,
        "580.159.04",
        "nvidia-smi",
    )
    # GPU 2 holds 71 GB already: not fit for a job needing 16 GiB; GPU 3 is.
    assert check_free(probe, ["2", "3"], inventory, need_mib=16384) == {
        "2": "GPU 2 has 10686 MiB free, 16384 MiB needed"
    }


def test_leftover_compute_processes_make_a_gpu_unfit() -> None:
    class Busy(StaticProbe):
        def states(self, ids):
            return [GpuState(i, memory_used_mib=100, processes=2 if i == "1" else 0) for i in ids]

    probe = Busy((Gpu("0", memory_mib=24576), Gpu("1", memory_mib=24576)))
    assert check_free(probe, ["0", "1"], probe.inventory()) == {
        "1": "2 compute process(es) left on GPU 1"
    }


def test_a_failing_nvidia_smi_is_a_reported_problem(tmp_path: Path) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n"
    )
    tool.chmod(0o755)
    inventory = SmiProbe(command=str(tool)).inventory()
    assert inventory.gpus == ()
    assert inventory.problems[0].startswith("nvidia-smi failed: Command")


def test_discover_honours_the_setting_and_falls_back_to_none(monkeypatch) -> None:
    assert discover("0,1").inventory() == Inventory(
        gpus=(Gpu("0"), Gpu("1")), source="LABCI_RUNNER_GPUS"
    )
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi; NVML has no driver here
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    assert discover(None).inventory().gpus == ()


async def test_sampler_summarises_utilisation_and_peak_memory(tmp_path: Path) -> None:
    sampler = GpuSampler(SmiProbe(command=fake_smi(tmp_path, "workstation.csv")), ["0", "1"], 0.01)
    import asyncio

    task = asyncio.create_task(sampler.run())
    await asyncio.sleep(0.3)
    task.cancel()
    summary = sampler.summary()
    assert summary["gpu_mem_peak_mib"] == 1187
    assert summary["gpu_util_mean"] == pytest.approx(1.5)


async def test_a_heartbeat_says_how_busy_each_gpu_is_where_the_probe_measures(
    tmp_path: Path,
) -> None:
    measured = RunnerGpus(probe := SmiProbe(command=fake_smi(tmp_path, "workstation.csv")),
                          probe.inventory())  # fmt: skip
    sent = await measured.heartbeat_now({"0"})
    assert [(g["id"], g["in_use"], g["utilization_pct"], g["memory_used_mib"])
            for g in sent["gpus"]] == [("0", True, 3, 1187), ("1", False, 0, 18)]  # fmt: skip
    # Named by LABCI_RUNNER_GPUS, nothing is measured: nothing is claimed.
    named = RunnerGpus(StaticProbe((Gpu("0"),)), Inventory(gpus=(Gpu("0"),)))
    assert "utilization_pct" not in (await named.heartbeat_now())["gpus"][0]


def test_inventory_in_a_heartbeat_marks_unfit_gpus() -> None:
    inventory = Inventory(gpus=(Gpu("0", "A100", 81920), Gpu("1", "A100", 81920)), source="nvml")
    sent = inventory.as_json({"1": "2 compute process(es) left on GPU 1"}, {"0"})
    assert [(g["id"], g["healthy"], g["problem"], g["in_use"]) for g in sent["gpus"]] == [
        ("0", True, None, True),
        ("1", False, "2 compute process(es) left on GPU 1", False),
    ]


@pytest.mark.gpu
def test_nvml_inventory_on_a_gpu_machine() -> None:
    from labci_runner.gpus import NvmlProbe

    probe = NvmlProbe()  # deselected where there is no driver (tests/conftest.py)
    inventory = probe.inventory()
    assert inventory.gpus
    assert inventory.driver_version
    states = probe.states([g.id for g in inventory.gpus])
    assert all(s.memory_used_mib is not None for s in states)
