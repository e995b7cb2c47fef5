"""Helpers for runner tests: jobs, and execution contexts that record what they receive."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.processes import pid_alive
from labci_runner.executors.base import ExecutionContext, StepResult
from labci_runner.logs import LogSink
from labci_spec import Job, JobInstance


def make_job(
    *runs: str | dict[str, Any],
    env: dict[str, str] | None = None,
    matrix: dict[str, Any] | None = None,
    **extra: Any,
) -> JobInstance:
    """A job instance as the server sends it; `extra` holds job keys in YAML spelling."""
    steps = [{"run": run} if isinstance(run, str) else run for run in runs]
    job = Job.model_validate(
        {"id": "test", "runs-on": ["cpu"], "env": env or {}, "steps": steps, **extra}
    )
    return JobInstance(
        workflow="test", job_id="test", key="test", group="test", matrix=matrix or {}, job=job
    )


@dataclass
class Recorder:
    """Receives what an executor reports: log batches and step results."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    wait_for_text: str | None = None

    async def send(self, batch: list[dict[str, Any]]) -> None:
        self.lines.extend(batch)
        if self.wait_for_text and any(line["text"] == self.wait_for_text for line in batch):
            self.seen.set()

    async def report_step(self, result: StepResult) -> None:
        self.steps.append(result)

    def texts(self, stream: str | None = None) -> list[str]:
        return [line["text"] for line in self.lines if stream in (None, line["stream"])]

    def final_statuses(self) -> list[str]:
        """Each step's last reported status, by index."""
        last: dict[int, str] = {}
        for result in self.steps:
            last[result.index] = result.status
        return [last[i] for i in sorted(last)]


@dataclass
class JobDirs:
    workspace: Path
    output: Path
    scratch: Path


def make_context(
    dirs: JobDirs,
    sink: LogSink,
    recorder: Recorder,
    *,
    timeout_s: float = 30.0,
    server_env: dict[str, str] | None = None,
    github: dict[str, str] | None = None,
) -> ExecutionContext:
    return ExecutionContext(
        workspace=dirs.workspace,
        output_dir=dirs.output,
        scratch_dir=dirs.scratch,
        server_env=server_env or {},
        timeout_s=timeout_s,
        logs=sink,
        report_step=recorder.report_step,
        github=github or {},
    )


def wait_gone(pid: int, within_s: float = 2.0) -> bool:
    """SIGKILL is delivered asynchronously: give the kernel a moment to tear `pid` down."""
    deadline = time.monotonic() + within_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path) -> int:
    pid = int(path.read_text().strip())
    assert pid > 1
    assert pid != os.getpid()
    return pid
