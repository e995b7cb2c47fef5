"""Run a job's steps in one container per job, on a real Docker engine.

Lifecycle of `DockerExecutor.run(instance, ctx)` (see `executors.base` for the contract):

1. The image is made present per the pull policy (`if-not-present` by default); a
   missing image or a failed pull is an `ExecutorError` naming the image.
2. One container is created with the locked-down settings of `container_config` and the
   labels of its runner, job and attempt, and started with a shell waiting as PID 1.
3. Each step runs through `docker exec` as the container's user, in its working
   directory, with its environment: state carries between steps as users expect. Its
   output is read line by line (stdout and stderr apart, ANSI kept), cut above
   `max_line_bytes`. A step's processes form their own process group.
4. A step timeout, a job timeout or a cancellation signals the step's group: SIGINT,
   SIGTERM after the grace period, SIGKILL after another; each signal is logged.
5. Whatever happened, the container is removed. A runner that restarts after a crash
   removes what it left behind, found by the runner label (`remove_leftovers`).

The Docker SDK is blocking; every call runs in a thread. The engine address is the
runner's `LABCI_RUNNER_DOCKER_HOST` (default DOCKER_HOST, else the local socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

import docker
import docker.errors
from docker.models.containers import Container

from labci_runner.errors import ExecutorError, StepSetupFailed
from labci_runner.executors.base import ExecutionContext, JobOutcome
from labci_runner.executors.container_config import (
    LABEL_PREFIX,
    OUTPUT,
    SCRIPTS,
    WORKSPACE,
    ContainerDefaults,
    JobPaths,
    container_config,
    container_labels,
)
from labci_runner.executors.docker_exec import (
    UNREACHABLE,
    ExecReader,
    exit_code,
    oom_kills,
    signal_group,
)
from labci_runner.executors.engine import DockerEngine
from labci_runner.executors.job_env import container_env, container_step_env
from labci_runner.executors.job_user import hand_over
from labci_runner.logs import forwarded
from labci_runner.steps import Started, StepPlan, StepRun, run_steps
from labci_spec import JobInstance, shell_command
from labci_spec.fields import format_size

# After the step's group is killed, an output stream silent this long is left behind.
PUMP_IDLE_S = 5.0

log = logging.getLogger(__name__)

PullPolicy = Literal["if-not-present", "always", "never"]
RUN_DIR = "/labci/run"  # a tmpfs of the job's own: step pid files
MAX_LINE_BYTES = 64 * 1024
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
ENGINE_UNREACHABLE = "docker engine unreachable"


@dataclass(frozen=True)
class DockerSettings:
    runner_name: str
    grace_s: float = 10.0
    pull_policy: PullPolicy = "if-not-present"
    default_image: str | None = None
    defaults: ContainerDefaults = ContainerDefaults()
    max_line_bytes: int = MAX_LINE_BYTES


class DockerExecutor:
    """The `docker` executor; see the module docstring for its lifecycle."""

    def __init__(self, engine: DockerEngine, settings: DockerSettings) -> None:
        self.engine = engine
        self.settings = settings

    def image_of(self, instance: JobInstance) -> str:
        container = instance.job.container
        if container is not None:
            return container.image
        if self.settings.default_image:
            return self.settings.default_image
        raise ExecutorError("the job names no container.image and this runner has no default")

    async def run(self, instance: JobInstance, ctx: ExecutionContext) -> JobOutcome:
        client = await _connect(self.engine)
        try:
            container, details = await self._start(client, instance, ctx)
            try:
                steps = _ContainerSteps(container, self, ctx, instance.job.resources.memory_bytes)
                outcome = await run_steps(instance, ctx, steps)
                return replace(outcome, details=details)
            finally:
                # Shielded: a cancellation must not leave the container behind.
                await asyncio.shield(asyncio.to_thread(_remove, container))
        finally:
            await asyncio.to_thread(client.close)

    async def _start(
        self, client: docker.DockerClient, instance: JobInstance, ctx: ExecutionContext
    ) -> tuple[Container, dict[str, Any]]:
        image = self.image_of(instance)
        await self._ensure_image(client, image)
        paths = JobPaths(ctx.workspace, ctx.output_dir, ctx.scratch_dir)
        await asyncio.to_thread(_hand_over, paths, self.settings.defaults.user)
        env = container_env(ctx.server_env, workspace=WORKSPACE, output=OUTPUT)
        config = container_config(
            instance,
            image=image,
            paths=paths,
            labels=container_labels(self.settings.runner_name, *_job_attempt(ctx.server_env)),
            env=env,
            gpu_ids=list(ctx.gpu_ids),
            defaults=self.settings.defaults,
        )
        details = await asyncio.to_thread(_details, client, image, config.limits)
        kwargs = dict(config.kwargs)
        kwargs["tmpfs"] = {**kwargs["tmpfs"], RUN_DIR: "rw,nosuid,nodev,noexec,mode=1777,size=1m"}
        try:
            container: Container = await asyncio.to_thread(
                client.containers.create, image, **kwargs
            )
            await asyncio.to_thread(container.start)
        except docker.errors.APIError as exc:
            raise ExecutorError(f"cannot start a container of {image}: {_explain(exc)}") from exc
        except _UNREACHABLE as exc:
            raise ExecutorError(ENGINE_UNREACHABLE) from exc
        await ctx.logs.write(0, "system", f"container {container.short_id} of {image} started")
        return container, details

    async def _ensure_image(self, client: docker.DockerClient, image: str) -> None:
        policy = self.settings.pull_policy
        present = policy != "always" and await asyncio.to_thread(_has_image, client, image)
        if present:
            return
        if policy == "never":
            raise ExecutorError(f"image {image} is not on this runner (pull policy: never)")
        try:
            await asyncio.to_thread(client.images.pull, image)
        except docker.errors.APIError as exc:
            raise ExecutorError(f"image {image} cannot be pulled: {_explain(exc)}") from exc
        except _UNREACHABLE as exc:
            raise ExecutorError(ENGINE_UNREACHABLE) from exc


_UNREACHABLE = UNREACHABLE


async def _connect(engine: DockerEngine) -> docker.DockerClient:
    if not await asyncio.to_thread(engine.answers):
        raise ExecutorError(ENGINE_UNREACHABLE)
    try:
        return await asyncio.to_thread(engine.client)
    except _UNREACHABLE as exc:
        raise ExecutorError(ENGINE_UNREACHABLE) from exc


def _details(client: docker.DockerClient, image: str, limits: dict[str, Any]) -> dict[str, Any]:
    """What the job's record says about its container: the image exactly, and its limits."""
    try:
        attrs = client.images.get(image).attrs
    except (docker.errors.APIError, *_UNREACHABLE):
        attrs = {}
    digests = attrs.get("RepoDigests") or []
    return {
        "executor": "docker",
        "image": image,
        "image_id": attrs.get("Id"),
        "image_digest": digests[0] if digests else None,
        "limits": limits,
    }


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    text = explanation.decode(errors="replace") if isinstance(explanation, bytes) else explanation
    return str(text or exc)[:300]


def _job_attempt(server_env: Mapping[str, str]) -> tuple[int, int]:
    job = server_env.get("LABCI_JOB_ID", "0")
    attempt = server_env.get("LABCI_ATTEMPT", "0")
    return (int(job) if job.isdigit() else 0, int(attempt) if attempt.isdigit() else 0)


def _remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def remove_leftovers(client: docker.DockerClient, runner_name: str) -> list[str]:
    """Remove every container this runner created and still has (after a crash)."""
    label = f"{LABEL_PREFIX}runner={runner_name}"
    removed = []
    for container in client.containers.list(all=True, filters={"label": label}):
        _remove(container)
        removed.append(container.short_id)
    return removed


class _ContainerSteps:
    """The StepLauncher of one job's container."""

    def __init__(
        self,
        container: Container,
        executor: DockerExecutor,
        ctx: ExecutionContext,
        memory_bytes: int | None = None,
    ):
        self.container = container
        self.executor = executor
        self.ctx = ctx
        self.memory_bytes = memory_bytes
        self.oom_kills = 0
        self.local_engine = executor.engine.url.startswith("unix://")

    async def launch(self, run: StepRun, ctx: ExecutionContext, started: Started) -> None:
        plan = run.plan
        script = ctx.scratch_dir / f"step-{plan.index}"
        await asyncio.to_thread(_write_script, script, plan.script)
        pidfile = f"{RUN_DIR}/step-{plan.index}.pid"
        argv = _step_argv(plan.shell, f"{SCRIPTS}/{script.name}")
        # The step records its pid (its group's id: an exec leads its own group).
        command = ["/bin/sh", "-c", 'echo $$ > "$0"; exec "$@"', pidfile, *argv]
        workdir = await asyncio.to_thread(_container_workdir, ctx, plan.workdir)
        exec_id = await self._exec_create(command, plan, ctx, workdir)
        reader = ExecReader(self.container, exec_id, ctx.logs, plan.index, ctx.on_stdout)
        task = asyncio.create_task(reader.pump(self.executor.settings.max_line_bytes))
        try:
            await started(run)
            await asyncio.shield(task)
        finally:
            if not task.done():
                await self._stop_step(exec_id, pidfile, task, plan.index)
            # Everything the step wrote is forwarded, however long the upload takes; only
            # a stream silent for PUMP_IDLE_S (held by a daemon) is left to the cleanup.
            with contextlib.suppress(Exception):
                await forwarded([task], ctx.logs, idle_s=PUMP_IDLE_S)
            # Whatever the step left running in the background goes with it, as on the host.
            await asyncio.to_thread(
                partial(signal_group, local=self.local_engine),
                self.container,
                exec_id,
                pidfile,
                signal.SIGKILL,
            )
            run.exit_code = await asyncio.to_thread(exit_code, self.container, exec_id)
            if run.exit_code == 128 + signal.SIGKILL:
                await self._check_memory(run)

    async def _check_memory(self, run: StepRun) -> None:
        """A SIGKILL may be the kernel's OOM killer: its count in the container's cgroup says."""
        kills = await asyncio.to_thread(oom_kills, self.container)
        if kills is not None and kills > self.oom_kills:
            self.oom_kills = kills
            limit = self.executor.settings.defaults.memory_bytes
            memory = self.memory_bytes or limit
            run.reason = f"ran out of memory (limit {format_size(memory)})"

    async def _exec_create(
        self, command: list[str], plan: StepPlan, ctx: ExecutionContext, workdir: str
    ) -> str:
        try:
            created = await asyncio.to_thread(
                self.container.client.api.exec_create,
                self.container.id,
                command,
                environment=self._env(plan, ctx),
                workdir=workdir,
                user=self.executor.settings.defaults.user,
            )
        except docker.errors.APIError as exc:
            raise ExecutorError(f"cannot run step {plan.index + 1}: {_explain(exc)}") from exc
        except _UNREACHABLE as exc:
            raise ExecutorError(ENGINE_UNREACHABLE) from exc
        return str(created["Id"])

    @staticmethod
    def _env(plan: StepPlan, ctx: ExecutionContext) -> dict[str, str]:
        """The allow-list of `executors.job_env`: nothing of the runner's environment."""
        return container_step_env(plan.env, ctx.server_env, workspace=WORKSPACE, output=OUTPUT)

    async def _stop_step(
        self, exec_id: str, pidfile: str, task: asyncio.Task[None], index: int
    ) -> None:
        """SIGINT, SIGTERM after the grace period, SIGKILL after another; each logged."""
        grace_s = self.executor.settings.grace_s
        for sig in STOP_SIGNALS:
            with contextlib.suppress(Exception):
                await self.ctx.logs.write(index, "system", f"sending {sig.name} to the step")
            await asyncio.to_thread(
                partial(signal_group, local=self.local_engine),
                self.container,
                exec_id,
                pidfile,
                sig,
            )
            done, _ = await asyncio.wait({task}, timeout=grace_s if sig != signal.SIGKILL else 5)
            if done:
                return
        # The step survived SIGKILL of its group (it left the group): stop everything.
        await asyncio.to_thread(self.container.kill)


def _hand_over(paths: JobPaths, user: str) -> None:
    """Give the container's user the checkout and the output directory.

    A runner running as root hands them to the container's (non-root) user; a runner
    running as a user runs its containers as that same user, and has nothing to do. Git
    objects hard-linked from the runner's mirror stay the runner's (see `job_user`).
    """
    if os.geteuid() != 0:
        return
    uid, _, gid = user.partition(":")
    hand_over((paths.workspace, paths.output), int(uid), int(gid or uid))


# Without a `shell:`, as GitHub Actions does in containers: bash when the image has it.
_DEFAULT_SHELL = (
    'if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc -eo pipefail "$0";'
    ' else exec sh -e "$0"; fi'
)


def _step_argv(shell: str | None, script: str) -> list[str]:
    if shell is None:
        return ["/bin/sh", "-c", _DEFAULT_SHELL, script]
    return shell_command(shell, script)


def _write_script(path: os.PathLike[str], text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o644)


def _container_workdir(ctx: ExecutionContext, relative: str) -> str:
    """The step's directory in the container; it must exist in the checkout and stay in it."""
    root = ctx.workspace.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise StepSetupFailed(f"working-directory {relative!r} escapes the workspace")
    if not path.is_dir():
        raise StepSetupFailed(f"working-directory {relative!r} does not exist in the workspace")
    inside = path.relative_to(root).as_posix()
    return WORKSPACE if inside == "." else f"{WORKSPACE}/{inside}"
