"""What a job's container is allowed: every `docker create` setting, decided in one place.

Experiments from pull requests are untrusted code on a lab's most expensive machines. The
defaults here are the locked-down ones; a workflow loosens them only where the format lets
it (`container.network: host`, the allow-listed `options`), and never to privileged mode,
extra capabilities, host namespaces or the Docker socket. GPUs are requested by the exact
device ids the scheduler assigned, never `count=-1`. Pure: no engine is contacted here,
so tests check the settings for any inventory and assignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.types import DeviceRequest, Mount, Ulimit

from labci_spec import JobInstance

WORKSPACE = "/labci/workspace"
OUTPUT = "/labci/output"
SCRIPTS = "/labci/scripts"
# PID 1 of the job's container: waits for steps, which run through `docker exec`.
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
LABEL_PREFIX = "dev.labci."


@dataclass(frozen=True)
class ContainerDefaults:
    """A runner's limits for jobs that state none, and its container user."""

    cpus: float = 2.0
    memory_bytes: int = 4 * 1024**3
    pids_limit: int = 4096
    tmp_bytes: int = 1024**3
    user: str = "1000:1000"


@dataclass(frozen=True)
class JobPaths:
    """The host directories of one attempt, mounted into its container."""

    workspace: Path
    output: Path
    scripts: Path


@dataclass(frozen=True)
class ContainerConfig:
    """Arguments of `DockerClient.containers.create`, plus what the job record shows."""

    image: str
    kwargs: dict[str, Any]
    limits: dict[str, Any] = field(default_factory=dict)


def container_labels(runner: str, job_id: int, attempt: int) -> dict[str, str]:
    """Labels by which a runner finds its containers again (cleanup after a crash)."""
    return {
        f"{LABEL_PREFIX}runner": runner,
        f"{LABEL_PREFIX}job": str(job_id),
        f"{LABEL_PREFIX}attempt": str(attempt),
    }


def container_config(
    instance: JobInstance,
    *,
    image: str,
    paths: JobPaths,
    labels: Mapping[str, str],
    env: Mapping[str, str],
    gpu_ids: Sequence[str] = (),
    defaults: ContainerDefaults = ContainerDefaults(),
) -> ContainerConfig:
    job = instance.job
    container = job.container
    options = container.parsed_options if container else None
    cpus = job.resources.cpus or defaults.cpus
    memory = job.resources.memory_bytes or defaults.memory_bytes
    kwargs: dict[str, Any] = {
        "entrypoint": KEEPALIVE,
        "command": None,
        "user": defaults.user,
        "working_dir": WORKSPACE,
        "environment": {**env, "NVIDIA_VISIBLE_DEVICES": ",".join(gpu_ids) or "void"},
        "labels": dict(labels),
        "network_mode": container.network if container else "none",
        "privileged": False,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={defaults.tmp_bytes}"},  # noqa: S108 (in the container)
        "pids_limit": defaults.pids_limit,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: an out-of-memory job is killed, not slowed
        "nano_cpus": int(cpus * 1e9),
        "mounts": [
            Mount(WORKSPACE, str(paths.workspace), type="bind"),
            Mount(OUTPUT, str(paths.output), type="bind"),
            Mount(SCRIPTS, str(paths.scripts), type="bind", read_only=True),
        ],
        "init": bool(options and options.init),
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    if gpu_ids:
        kwargs["device_requests"] = [
            DeviceRequest(driver="nvidia", device_ids=list(gpu_ids), capabilities=[["gpu"]])
        ]
    if options and options.shm_size_bytes:
        kwargs["shm_size"] = options.shm_size_bytes
    if options and options.ulimits:
        kwargs["ulimits"] = [
            Ulimit(name=name, soft=soft, hard=hard)
            for name, (soft, hard) in options.ulimits.items()
        ]
    limits = {
        "cpus": cpus,
        "memory_bytes": memory,
        "pids": defaults.pids_limit,
        "network": kwargs["network_mode"],
        "gpus": list(gpu_ids),
    }
    return ContainerConfig(image=image, kwargs=kwargs, limits=limits)
