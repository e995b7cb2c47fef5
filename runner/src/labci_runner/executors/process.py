"""Run steps as host processes: `bash --noprofile --norc -eo pipefail <script>`.

Each step is its own session and process group (start_new_session), so the runner can
signal everything the step started — background children included — in one `killpg`.
The group is killed when the step ends, whatever the reason: a step may not leave
daemons behind. (A child that calls setsid itself escapes the group; containing those
needs cgroups, which is the docker executor's job.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labci_runner.errors import ExecutorError
from labci_runner.executors.base import (
    ExecutionContext,
    JobOutcome,
    StepResult,
    describe_timeout,
)
from labci_runner.logs import LogSink
from labci_runner.settings import SECRET_ENV_NAMES
from labci_spec import Job, Step

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

    async def run(self, job: Job, ctx: ExecutionContext) -> JobOutcome:
        results: list[StepResult] = []
        try:
            async with asyncio.timeout(ctx.timeout_s) as scope:
                failed = await self._run_steps(job, ctx, results)
        except TimeoutError:
            if not scope.expired():
                raise
            reason = describe_timeout(ctx.timeout_s)
            await ctx.logs.write(max(len(results) - 1, 0), "system", reason)
            await self._skip_rest(job, ctx, results)
            return JobOutcome("timed_out", reason, results)
        except asyncio.CancelledError:
            await ctx.logs.write(max(len(results) - 1, 0), "system", "cancelled")
            await self._skip_rest(job, ctx, results)
            raise
        if failed is None:
            return JobOutcome("success", None, results)
        name = job.steps[failed.index].display_name
        reason = f"step {failed.index + 1} ({name}) exited with {failed.exit_code}"
        return JobOutcome("failure", reason, results)

    async def _run_steps(
        self, job: Job, ctx: ExecutionContext, results: list[StepResult]
    ) -> StepResult | None:
        """Run steps in order; return the failed one, if any (later ones are skipped)."""
        failed: StepResult | None = None
        for index, step in enumerate(job.steps):
            if failed is not None:
                await self._report(ctx, results, StepResult(index, "skipped"))
                continue
            result = await self._run_step(index, step, job, ctx, results=results)
            if result.status == "failure":
                failed = result
        return failed

    async def _skip_rest(self, job: Job, ctx: ExecutionContext, results: list[StepResult]) -> None:
        for index in range(len(results), len(job.steps)):
            await self._report(ctx, results, StepResult(index, "skipped"))

    @staticmethod
    async def _report(ctx: ExecutionContext, results: list[StepResult], result: StepResult) -> None:
        results.append(result)
        await ctx.report_step(result)

    async def _run_step(
        self, index: int, step: Step, job: Job, ctx: ExecutionContext, *, results: list[StepResult]
    ) -> StepResult:
        script = ctx.scratch_dir / f"step-{index}.sh"
        await asyncio.to_thread(script.write_text, step.run)
        await ctx.logs.write(index, "system", f"▶ {step.display_name}")
        running = await self._spawn(script, ctx, self.step_env(job, step, ctx))
        # The step's clock starts when its process exists.
        started_at = time.time()
        pumps = [
            asyncio.create_task(self._pump(running.proc.stdout, ctx.logs, index, "stdout")),
            asyncio.create_task(self._pump(running.proc.stderr, ctx.logs, index, "stderr")),
        ]
        try:
            await ctx.report_step(StepResult(index, "running", started_at=started_at))
            await asyncio.shield(running.exited)
        finally:
            # Runs on success, failure, timeout and cancellation alike: the interrupted
            # step is recorded as failed before the exception continues upwards.
            await self._stop_group(running)
            await _finish(pumps)
            exit_code = _shell_exit_code(running.proc.returncode)
            status: Literal["success", "failure"] = "success" if exit_code == 0 else "failure"
            result = StepResult(index, status, exit_code, started_at, time.time())
            await self._report(ctx, results, result)
        return result

    def step_env(self, job: Job, step: Step, ctx: ExecutionContext) -> dict[str, str]:
        """Runner env < job env < step env < server env < the LABCI_* variables."""
        env = dict(self.base_env)
        env.update(job.env)
        env.update(step.env)
        env.update(ctx.server_env)
        env["LABCI_OUTPUT"] = str(ctx.output_dir)
        env["LABCI_WORKSPACE"] = str(ctx.workspace)
        env["CI"] = "true"
        return env

    async def _spawn(self, script: Path, ctx: ExecutionContext, env: dict[str, str]) -> _Step:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(exited, limit=self.max_line_bytes, loop=loop),
                "bash",
                "--noprofile",
                "--norc",
                "-eo",
                "pipefail",
                os.fspath(script),
                cwd=ctx.workspace,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start bash in {ctx.workspace}: {exc}") from exc
        return _Step(asyncio.subprocess.Process(transport, protocol, loop), exited)

    async def _stop_group(self, step: _Step) -> None:
        """SIGTERM, then SIGKILL after the grace period; always SIGKILL leftovers."""
        pid = step.proc.pid
        try:
            if not step.exited.done():
                _signal_group(pid, signal.SIGTERM)
                # asyncio.wait, not asyncio.timeout: this also runs while a cancellation
                # is being delivered, where a nested timeout scope misreports expiry.
                await asyncio.wait({step.exited}, timeout=self.grace_s)
        finally:
            _signal_group(pid, signal.SIGKILL)
        await asyncio.shield(step.exited)

    async def _pump(
        self, reader: asyncio.StreamReader | None, logs: LogSink, step: int, stream: Stream
    ) -> None:
        """Forward `reader` line by line; lines over the limit are cut and marked."""
        if reader is None:
            return
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
