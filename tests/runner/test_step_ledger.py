"""executors.step_ledger: a restarted runner kills the step groups it recorded, and only
those (I4 for the process executor; the end-to-end case is in tests/e2e/test_runner_loss)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from labci_runner.executors.step_ledger import StepLedger, start_time


def group(*argv: str) -> subprocess.Popen[bytes]:
    """A process in a session and group of its own, as a step is."""
    return subprocess.Popen(argv, start_new_session=True)


def test_a_recorded_group_still_running_is_killed_whole(tmp_path: Path) -> None:
    ledger = StepLedger(tmp_path / "steps")
    # A shell with a child of its own in the same group, as a step's script has.
    step = group("bash", "-c", "sleep 600 & wait")
    ledger.record(step.pid)
    assert ledger.kill_leftovers() == [step.pid]
    assert step.wait(timeout=60) == -signal.SIGKILL
    assert list((tmp_path / "steps").iterdir()) == []  # the records went with it


def test_a_finished_step_is_forgotten(tmp_path: Path) -> None:
    ledger = StepLedger(tmp_path / "steps")
    step = group("true")
    ledger.record(step.pid)
    step.wait()
    ledger.forget(step.pid)
    assert ledger.kill_leftovers() == []


def test_a_pid_given_to_another_process_is_left_alone(tmp_path: Path) -> None:
    """The record holds its process's start time: another process under the same pid (a
    reused pid) has another one and is not killed."""
    ledger = StepLedger(tmp_path / "steps")
    other = group("sleep", "600")
    try:
        (tmp_path / "steps").mkdir()
        started = int(start_time(other.pid) or 0)
        (tmp_path / "steps" / str(other.pid)).write_text(f"{started - 1}\n")
        assert ledger.kill_leftovers() == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_garbage_in_the_ledger_is_dropped(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    steps.mkdir()
    (steps / "notes.txt").write_text("hello")
    (steps / "999999999").write_text("12\n")  # no such process
    (steps / str(os.getpid())).write_text("not a time\n")
    assert StepLedger(steps).kill_leftovers() == []
    assert list(steps.iterdir()) == []
