"""Run steps as host processes, each under its shell (`bash --noprofile --norc -eo pipefail`).

Each step is its own session and process group (start_new_session), so the runner can
signal everything the step started — background children included — in one `killpg`.
The group is killed when the step ends, whatever the reason: a step may not leave
daemons behind. (A child that calls setsid itself escapes the group; containing those
needs cgroups, which is the docker executor's job.)

Steps start with every signal at its default disposition and none blocked, whatever the
runner inherited: a runner started with SIGINT ignored (`nohup`, `&` in a script) must
still interrupt a step with SIGINT, and exec keeps ignored signals ignored (a caught one
is reset to its default). So before a spawn the runner gives each signal it ignores a
handler that does nothing (it goes on ignoring it, and the step gets the default) and
unblocks what is blocked in its event loop's thread (`_steps_inherit_defaults`); SIGPIPE
and SIGXFSZ, which Python itself ignores, are reset in the child by Popen's
`restore_signals`. Nothing then runs in the child between fork and exec, which lets
Python spawn with vfork: 0.4 ms instead of 6 ms for a runner of 90 MB, measured, on the
way to every step. Off the main thread (signal handlers can only be set there) the reset
runs in the child instead (`_default_signals`).

Steps get an environment built from an allow-list (`executors.job_env`), never the
runner's own. Given a job user (`LABCI_RUNNER_JOB_USER`, see `executors.job_user`), they
run as that user with its primary group only, in directories handed over to it, with
HOME and TMPDIR in the job's scratch directory; the runner writes each step's script
there without following links.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from labci_runner.errors import ExecutorError, StepSetupFailed
from labci_runner.executors.base import ExecutionContext, JobOutcome
from labci_runner.executors.job_env import HostJob, host_step_env, runner_values
from labci_runner.executors.job_user import JobUser, hand_over, own_user_name
from labci_runner.executors.lines import LineSplitter
from labci_runner.executors.step_ledger import StepLedger
from labci_runner.logs import LogSink, forwarded
from labci_runner.steps import Started, StepPlan, StepRun, run_steps
from labci_spec import JobInstance, shell_command

MAX_LINE_BYTES = 64 * 1024
READ_BYTES = 64 * 1024
# After the group is killed, only an escaped (setsid) daemon can keep a pipe open; a pipe
# silent this long is given up on (a pump still forwarding lines is always waited for).
PUMP_IDLE_S = 2.0

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
        pass_env: Sequence[str] = (),
        job_user: JobUser | None = None,
        grace_s: float = 10.0,
        max_line_bytes: int = MAX_LINE_BYTES,
        ledger: StepLedger | None = None,
    ) -> None:
        """`base_env` is the runner's environment: steps get only what `job_env` allows of
        it, and the names in `pass_env` (LABCI_RUNNER_JOB_ENV). `ledger` records the
        running steps for a restarted runner to kill (`executors.step_ledger`)."""
        self.ledger = ledger
        self.runner_env = runner_values(base_env, pass_env)
        self.job_user = job_user
        self.user_name = job_user.name if job_user else own_user_name()
        self.grace_s = grace_s
        self.max_line_bytes = max_line_bytes

    async def run(self, instance: JobInstance, ctx: ExecutionContext) -> JobOutcome:
        try:
            await asyncio.to_thread(self._prepare_dirs, ctx)
        except OSError as exc:
            raise ExecutorError(f"cannot prepare the job's directories: {exc}") from exc
        outcome = await run_steps(instance, ctx, self)
        return replace(outcome, details={"executor": "process", "gpus": list(ctx.gpu_ids)})

    def _prepare_dirs(self, ctx: ExecutionContext) -> None:
        """HOME and TMPDIR in the scratch directory; everything the job's, given a job user."""
        for path in _home_and_tmp(ctx):
            path.mkdir(mode=0o700, exist_ok=True)
        if self.job_user is not None:
            tops = (ctx.workspace, ctx.output_dir, ctx.scratch_dir)
            hand_over(tops, self.job_user.uid, self.job_user.gid, top_mode=0o700)

    async def launch(self, run: StepRun, ctx: ExecutionContext, started: Started) -> None:
        plan = run.plan
        cwd = _workdir(ctx.workspace, plan.workdir)
        script = ctx.scratch_dir / f"step-{plan.index}"
        try:
            await asyncio.to_thread(_write_script, script, plan.script, self.job_user)
        except OSError as exc:
            raise ExecutorError(f"cannot write step {plan.index + 1}'s script: {exc}") from exc
        argv = shell_command(plan.shell, os.fspath(script))
        running = await self._spawn(argv, cwd, self.step_env(plan, ctx))
        if self.ledger is not None:
            self.ledger.record(running.proc.pid)
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
            if self.ledger is not None:
                self.ledger.forget(running.proc.pid)
            await _finish(pumps, ctx.logs)
            run.exit_code = _shell_exit_code(running.proc.returncode)

    def step_env(self, plan: StepPlan, ctx: ExecutionContext) -> dict[str, str]:
        """The allow-list of `executors.job_env`; the workflow's env over the runner's."""
        home, tmpdir = _home_and_tmp(ctx)
        job = HostJob(
            workspace=str(ctx.workspace),
            output=str(ctx.output_dir),
            home=str(home),
            tmpdir=str(tmpdir),
            user=self.user_name,
            gpu_ids=tuple(ctx.gpu_ids),
        )
        return host_step_env(self.runner_env, plan.env, ctx.server_env, job)

    async def _spawn(self, argv: list[str], cwd: Path, env: dict[str, str]) -> _Step:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        reset = {} if _steps_inherit_defaults() else {"preexec_fn": _default_signals}
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
                **reset,
                **self._as_job_user(),
            )
        except FileNotFoundError as exc:
            # The workflow's `shell:` names a program this machine lacks: the step fails.
            raise StepSetupFailed(f"'{argv[0]}' is not installed on this runner") from exc
        except OSError as exc:
            raise ExecutorError(f"cannot start {argv[0]} in {cwd}: {exc.strerror}") from exc
        return _Step(asyncio.subprocess.Process(transport, protocol, loop), exited)

    def _as_job_user(self) -> dict[str, Any]:
        """Popen's arguments that drop to the job user: its uid, its primary group, no
        supplementary groups (root's would otherwise stay)."""
        if self.job_user is None:
            return {}
        return {"user": self.job_user.uid, "group": self.job_user.gid, "extra_groups": []}

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
        """Forward `reader` line by line (`LineSplitter`: lines over the limit are cut and
        marked, a progress bar's redrawings merged)."""
        if reader is None:
            return
        logs = _Forward(ctx, stream)
        lines = LineSplitter(self.max_line_bytes)
        while chunk := await reader.read(READ_BYTES):
            for line in lines.feed(chunk):
                await logs.write(step, stream, line)
        for line in lines.close():
            await logs.write(step, stream, line)


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


def _home_and_tmp(ctx: ExecutionContext) -> tuple[Path, Path]:
    return ctx.scratch_dir / "home", ctx.scratch_dir / "tmp"


def _write_script(path: Path, text: str, owner: JobUser | None) -> None:
    """Write a step's script, 0600 and the step user's, into a directory the job may own:
    whatever the job left at that name is removed first (a link itself, never its target),
    and the new file is created without following links."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        if owner is not None:
            os.fchown(fd, owner.uid, owner.gid)
        handle.write(text)


def _shell_exit_code(returncode: int | None) -> int | None:
    """asyncio reports death by signal N as -N; shells and people say 128+N."""
    if returncode is not None and returncode < 0:
        return 128 - returncode
    return returncode


# Every signal a process may catch (SIGKILL and SIGSTOP cannot be changed).
_SETTABLE = sorted(set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP})


# Reset to their defaults in the child by Popen (restore_signals=True): Python ignores them.
_RESTORED_BY_POPEN = {signal.SIGPIPE, signal.SIGXFSZ}


def _ignore(signum: int, frame: object) -> None:
    """The handler standing in for SIG_IGN in the runner (exec resets it for the step)."""


def _steps_inherit_defaults() -> bool:
    """Make the runner's ignored signals caught ones and unblock its signals, so that a
    step exec'd from here starts with defaults; False off the main thread, where handlers
    cannot be set."""
    if threading.current_thread() is not threading.main_thread():
        return False
    for sig in _SETTABLE:
        if sig in _RESTORED_BY_POPEN:
            continue
        with contextlib.suppress(OSError, ValueError):  # e.g. signals reserved by libc
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, _ignore)
    if signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
    return True


def _default_signals() -> None:
    """In the step's process before exec: default dispositions, an empty signal mask."""
    for sig in _SETTABLE:
        with contextlib.suppress(OSError, ValueError):  # e.g. signals reserved by libc
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group is already empty


async def _finish(pumps: list[asyncio.Task[None]], logs: LogSink) -> None:
    """Every line the step wrote is forwarded; only a silent pipe is given up on."""
    pending = await forwarded(pumps, logs, idle_s=PUMP_IDLE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
