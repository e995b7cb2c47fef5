"""A job's environment: built from an allow-list, never inherited from the runner.

The runner's own environment holds its credentials (its token, a Redis URL with a
password) and, on a machine shared with a server, the server's (`LABCI_WEBHOOK_SECRET`,
the database URL). None of it reaches a step unless named here.

A host step (process executor) gets, later entries winning:

1. from the runner: `PATH` (else a safe default), `LANG`, `LC_ALL`, `TZ` when set, and the
   names the lab admin lists in `LABCI_RUNNER_JOB_ENV` (never `LABCI_*` or `DOCKER_*`);
2. `HOME` and `TMPDIR` in the job's own directory, `USER`/`LOGNAME` of the step's user;
3. the workflow's `env` (job, then step);
4. the job's `LABCI_*` values from the server (run, commit, branch, event);
5. `LABCI_OUTPUT`, `LABCI_WORKSPACE`, `CI=true`, and the GPUs the scheduler assigned.

A container step gets nothing of the runner's: the image's own PATH, `HOME=/tmp`, then
3, 4 and 5 with the container's paths. A container may run a fork's pull request, so not
even `LABCI_RUNNER_JOB_ENV` reaches it; what a container needs belongs in its image or
its workflow's `env`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from labci_runner.settings import JOB_SET_NAMES, SECRET_ENV_NAMES

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FROM_RUNNER = ("PATH", "LANG", "LC_ALL", "TZ")


def runner_values(runner_env: Mapping[str, str], extra_names: Sequence[str]) -> dict[str, str]:
    """What host steps take from the runner's environment (1. above).

    The settings refuse `LABCI_*`, `DOCKER_*` and the names the runner sets in
    `extra_names`; they are dropped here too, whoever built the list.
    """
    names = [*FROM_RUNNER, *extra_names]
    picked = {
        name: runner_env[name]
        for name in names
        if name in runner_env
        and name not in JOB_SET_NAMES
        and not name.upper().startswith(("LABCI_", "DOCKER_"))
    }
    picked.setdefault("PATH", SAFE_PATH)
    return picked


def server_values(server_env: Mapping[str, str]) -> dict[str, str]:
    """The job's `LABCI_*` values from the server's assignment; nothing else it sends."""
    return {
        name: value
        for name, value in server_env.items()
        if name.startswith("LABCI_") and name not in SECRET_ENV_NAMES
    }


@dataclass(frozen=True)
class HostJob:
    """Where one host job lives and who runs it: the parts of 2. and 5. above."""

    workspace: str
    output: str
    home: str
    tmpdir: str
    user: str
    gpu_ids: Sequence[str] = ()


def host_step_env(
    runner: Mapping[str, str],
    workflow_env: Mapping[str, str],
    server_env: Mapping[str, str],
    job: HostJob,
) -> dict[str, str]:
    """A host step's whole environment, per the module docstring; `runner` is what
    `runner_values` picked."""
    gpus = ",".join(job.gpu_ids)
    return {
        **runner,
        "HOME": job.home,
        "TMPDIR": job.tmpdir,
        "USER": job.user,
        "LOGNAME": job.user,
        **workflow_env,
        **server_values(server_env),
        "LABCI_OUTPUT": job.output,
        "LABCI_WORKSPACE": job.workspace,
        "CI": "true",
        # Pinned to the GPUs the scheduler assigned; a CPU job sees none.
        "CUDA_VISIBLE_DEVICES": gpus,
        "NVIDIA_VISIBLE_DEVICES": gpus or "void",
    }


def container_env(server_env: Mapping[str, str], *, workspace: str, output: str) -> dict[str, str]:
    """The environment a job's container is created with (its image supplies PATH)."""
    return {
        "HOME": "/tmp",  # noqa: S108 (in the container, a tmpfs of its own)
        **server_values(server_env),
        "LABCI_WORKSPACE": workspace,
        "LABCI_OUTPUT": output,
        "CI": "true",
    }


def container_step_env(
    workflow_env: Mapping[str, str], server_env: Mapping[str, str], *, workspace: str, output: str
) -> dict[str, str]:
    """What `docker exec` adds for one step, over the container's environment."""
    return {
        **workflow_env,
        **server_values(server_env),
        "LABCI_WORKSPACE": workspace,
        "LABCI_OUTPUT": output,
        "CI": "true",
    }
