"""Fixtures for runner tests; helpers live in runner_kit.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runner_kit import JobDirs, Recorder

from labci_runner.logs import LogSink


@pytest.fixture
def job_dirs(tmp_path: Path) -> JobDirs:
    dirs = JobDirs(tmp_path / "src", tmp_path / "output", tmp_path / "scratch")
    for path in (dirs.workspace, dirs.output, dirs.scratch):
        path.mkdir()
    return dirs


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def sink(recorder: Recorder) -> AsyncIterator[LogSink]:
    async with LogSink(recorder.send, flush_interval_s=0.02) as log_sink:
        yield log_sink
