"""The settings of a job's container, decided without an engine: locked down by default,
loosened only where the format allows, GPUs by the exact ids the scheduler assigned."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_kit import make_job

from labci_runner.executors.container_config import (
    ContainerDefaults,
    JobPaths,
    container_config,
    container_labels,
)

PATHS = JobPaths(Path("/w/src"), Path("/w/out"), Path("/w/scripts"))


def config(container=None, resources=None, gpu_ids=(), **defaults):
    extra = {}
    if container is not None:
        extra["container"] = container
    if resources is not None:
        extra["resources"] = resources
    job = make_job("true", **extra)
    return container_config(
        job,
        image="lab/img:1",
        paths=PATHS,
        labels=container_labels("r1", 7, 2),
        env={"LABCI_JOB_ID": "7"},
        gpu_ids=gpu_ids,
        defaults=ContainerDefaults(**defaults),
    )


def test_defaults_are_locked_down() -> None:
    kwargs = config().kwargs
    assert kwargs["privileged"] is False
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges"]
    assert kwargs["read_only"] is True
    assert kwargs["network_mode"] == "none"
    assert kwargs["pids_limit"] == 4096
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 4 * 1024**3
    assert kwargs["nano_cpus"] == 2_000_000_000
    assert kwargs["user"] == "1000:1000"
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert "device_requests" not in kwargs
    assert [(m["Target"], m["Source"], m["ReadOnly"]) for m in kwargs["mounts"]] == [
        ("/labci/workspace", "/w/src", False),
        ("/labci/output", "/w/out", False),
        ("/labci/scripts", "/w/scripts", True),
    ]
    assert not any("docker.sock" in m["Source"] for m in kwargs["mounts"])
    assert kwargs["labels"] == {
        "dev.labci.runner": "r1",
        "dev.labci.job": "7",
        "dev.labci.attempt": "2",
    }


def test_resources_and_allowed_options_loosen_only_what_they_name() -> None:
    made = config(
        container={
            "image": "lab/img:1",
            "network": "host",
            "options": "--shm-size 2g --init --ulimit memlock=-1",
        },
        resources={"cpus": 8, "memory": "16G"},
    )
    kwargs = made.kwargs
    assert (kwargs["network_mode"], kwargs["shm_size"], kwargs["init"]) == (
        "host",
        2 * 1024**3,
        True,
    )
    assert [(u["Name"], u["Soft"], u["Hard"]) for u in kwargs["ulimits"]] == [("memlock", -1, -1)]
    assert kwargs["nano_cpus"] == 8_000_000_000
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 16 * 1024**3
    assert kwargs["privileged"] is False
    assert kwargs["cap_drop"] == ["ALL"]
    assert made.limits == {
        "cpus": 8.0,
        "memory_bytes": 16 * 1024**3,
        "pids": 4096,
        "network": "host",
        "gpus": [],
    }


@pytest.mark.parametrize(
    ("gpu_ids", "visible"),
    [(["0"], "0"), (["1", "3"], "1,3"), (["GPU-5f2a"], "GPU-5f2a")],
    ids=["one", "two-of-four", "by-uuid"],
)
def test_gpus_are_requested_by_the_assigned_ids(gpu_ids: list[str], visible: str) -> None:
    kwargs = config(resources={"gpus": len(gpu_ids)}, gpu_ids=gpu_ids).kwargs
    (request,) = kwargs["device_requests"]
    assert request["Driver"] == "nvidia"
    assert request["DeviceIDs"] == gpu_ids
    assert request["Count"] == 0  # never -1 ("all GPUs") on a shared machine
    assert request["Capabilities"] == [["gpu"]]
    assert kwargs["environment"]["NVIDIA_VISIBLE_DEVICES"] == visible
