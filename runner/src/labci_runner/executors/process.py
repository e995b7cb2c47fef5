"""Run steps as host processes, each under its shell (`bash --noprofile --norc -eo pipefail`).

Each step is its own session and process group (start_new_session), so the runner can
signal everything the step started — background children included — in one `killpg`.
The group is killed when the step ends, whatever the reason: a step may not leave
daemons behind. (A child that calls setsid itself escapes the group; containing those
needs cgroups, which is the docker executor's job.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from labci_runner.errors import ExecutorError, StepSetupFailed
from labci_runner.executors.base import ExecutionContext, JobOutcome
from labci_runner.settings import SECRET_ENV_NAMES
from labci_runner.steps import Started, StepPlan, StepRun, run_steps
from labci_spec import JobInstance, shell_command

MAX_LINE_BYTES = 64 * 1024
TRUNCATED_MARK = " …[line truncated]"
# After the group is killed, only an escaped (setsid) daemon can keep a pipe open;
# don't let it hold the job hostage.
PUMP_DRAIN_S = 2.0

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class _Step:
    """A started step: its bash process, and a future done when bash has exited."""

    proc: asyncio.subprocess.Process
    exited: asyncio.Future[None]


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """Reports bash's exit at once.

    `Process.wait()` (Python 3.11) also waits for stdout/stderr to close, which a
    background child still holding them would delay forever; the runner needs the exit
    itself to know when to kill what the step left behind.
    """

    def __init__(self, exited: asyncio.Future[None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._exited = exited

    def process_exited(self) -> None:
        super().process_exited()
        if not self._exited.done():
            self._exited.set_result(None)


class ProcessExecutor:
    """The `process` executor; see `executors.base` for the lifecycle it implements."""

    def __init__(
        self,
        *,
        base_env: Mapping[str, str],
        grace_s: float = 10.0,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.base_env = {k: v for k, v in base_env.items() if k not in SECRET_ENV_NAMES}
        self.grace_s = grace_s
        self.max_line_bytes = max_line_bytes

    async def run(self, instance: JobInstance, ctx: ExecutionContext) -> JobOutcome:
        outcome = await run_steps(instance, ctx, self)
        return replace(outcome, details={"executor": "process", "gpus": list(ctx.gpu_ids)})

    async def launch(self, run: StepRun, ctx: ExecutionContext, started: Started) -> None:
        plan = run.plan
        cwd = _workdir(ctx.workspace, plan.workdir)
        script = ctx.scratch_dir / f"step-{plan.index}"
        await asyncio.to_thread(script.write_text, plan.script)
        argv = shell_command(plan.shell, os.fspath(script))
        running = await self._spawn(argv, cwd, self.step_env(plan, ctx))
        pumps = [
            asyncio.create_task(self._pump(running.proc.stdout, ctx, plan.index, "stdout")),
            asyncio.create_task(self._pump(running.proc.stderr, ctx, plan.index, "stderr")),
        ]
        try:
            await started(run)  # the step's clock starts when its process exists
            await asyncio.shield(running.exited)
        finally:
            # On success, failure, timeout and cancellation alike: nothing the step
            # started may outlive it.
            await self._stop_group(running, ctx, plan.index)
            await _finish(pumps)
            run.exit_code = _shell_exit_code(running.proc.returncode)

    def step_env(self, plan: StepPlan, ctx: ExecutionContext) -> dict[str, str]:
        """Runner env < job env < step env < server env < the LABCI_* variables."""
        env = dict(self.base_env)
        env.update(plan.env)
        env.update(ctx.server_env)
        env["LABCI_OUTPUT"] = str(ctx.output_dir)
        env["LABCI_WORKSPACE"] = str(ctx.workspace)
        env["CI"] = "true"
        # Pinned to the GPUs the scheduler assigned; a CPU job sees none.
        env["CUDA_VISIBLE_DEVICES"] = ",".join(ctx.gpu_ids)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(ctx.gpu_ids) or "void"
        return env

    async def _spawn(self, argv: list[str], cwd: Path, env: dict[str, str]) -> _Step:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(exited, limit=self.max_line_bytes, loop=loop),
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            # The workflow's `shell:` names a program this machine lacks: the step fails.
            raise StepSetupFailed(f"'{argv[0]}' is not installed on this runner") from exc
        except OSError as exc:
            raise ExecutorError(f"cannot start {argv[0]} in {cwd}: {exc.strerror}") from exc
        return _Step(asyncio.subprocess.Process(transport, protocol, loop), exited)

    async def _stop_group(self, step: _Step, ctx: ExecutionContext, index: int) -> None:
        """A step still running is interrupted as a person would: SIGINT, SIGTERM after the
        grace period, SIGKILL after another, each logged. Whatever is left of the group
        after the step ended (daemons it started) is killed too."""
        pid = step.proc.pid
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                if step.exited.done():
                    break
                with contextlib.suppress(Exception):  # logging must not stop the stopping
                    await ctx.logs.write(index, "system", f"sending {sig.name} to the step")
                _signal_group(pid, sig)
                # asyncio.wait, not asyncio.timeout: this also runs while a cancellation
                # is being delivered, where a nested timeout scope misreports expiry.
                await asyncio.wait({step.exited}, timeout=self.grace_s)
            if not step.exited.done():
                with contextlib.suppress(Exception):
                    await ctx.logs.write(index, "system", "sending SIGKILL to the step")
        finally:
            _signal_group(pid, signal.SIGKILL)
        await asyncio.shield(step.exited)

    async def _pump(
        self, reader: asyncio.StreamReader | None, ctx: ExecutionContext, step: int, stream: Stream
    ) -> None:
        """Forward `reader` line by line; lines over the limit are cut and marked."""
        if reader is None:
            return
        logs = _Forward(ctx, stream)
        discarding = False
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial and not discarding:
                    await logs.write(step, stream, _decode(exc.partial))
                return
            except asyncio.LimitOverrunError:
                chunk = await reader.read(self.max_line_bytes)
                if not discarding:
                    await logs.write(step, stream, _decode(chunk) + TRUNCATED_MARK)
                discarding = True
                continue
            if not discarding:
                await logs.write(step, stream, _decode(raw))
            discarding = False


class _Forward:
    """Where a stream's lines go: the log, and for stdout the `::metric` collector too."""

    def __init__(self, ctx: ExecutionContext, stream: Stream) -> None:
        self.ctx = ctx
        self.stream = stream

    async def write(self, step: int, stream: Stream, text: str) -> None:
        if stream == "stdout" and self.ctx.on_stdout is not None:
            self.ctx.on_stdout(text)
        await self.ctx.logs.write(step, stream, text)


def _workdir(workspace: Path, relative: str) -> Path:
    """The step's directory: inside the workspace (symlinks resolved), and existing."""
    root = workspace.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise StepSetupFailed(f"working-directory {relative!r} escapes the workspace")
    if not path.is_dir():
        raise StepSetupFailed(f"working-directory {relative!r} does not exist in the workspace")
    return path


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _shell_exit_code(returncode: int | None) -> int | None:
    """asyncio reports death by signal N as -N; shells and people say 128+N."""
    if returncode is not None and returncode < 0:
        return 128 - returncode
    return returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is already empty


async def _finish(pumps: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(pumps, timeout=PUMP_DRAIN_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
