"""The step process groups this runner has running, written down where a restart finds them.

A runner killed with `kill -9` cannot stop its steps: each step is a session and process
group of its own (`executors.process`), so it runs on, orphaned, holding the job's files,
CPUs and GPUs, while the server has already handed the job to another runner. The docker
executor finds such leftovers by its containers' runner label (`remove_leftovers`); this
is the process executor's counterpart: one file per running step under
`<workdir>/steps/<pid>`, holding the step process's start time (field 22 of
/proc/<pid>/stat), written when the step starts and removed when it ends. A runner that
starts kills the group of every step still on record whose process is the one it
recorded: a pid that the system has since given to another process has another start
time, and is left alone. A group whose leader (the step's shell) has already exited is not
killed either: nothing then tells it from a group someone else started under a reused id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19]  # field 22 of the whole line


class StepLedger:
    """Owns `<workdir>/steps`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, pid: int) -> None:
        started = start_time(pid)
        if started is None:
            return  # gone already (or no /proc): nothing could outlive the runner
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.directory / f".{pid}.partial"
        partial.write_text(started + "\n")
        partial.replace(self.directory / str(pid))

    def forget(self, pid: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / str(pid)).unlink()

    def kill_leftovers(self) -> list[int]:
        """SIGKILL the groups of the recorded steps still running; their pids."""
        killed = []
        try:
            records = list(self.directory.iterdir())
        except FileNotFoundError:
            return []
        for record in records:
            if record.name.isdigit():
                pid = int(record.name)
                with contextlib.suppress(OSError):
                    if start_time(pid) == record.read_text().strip():
                        os.killpg(pid, signal.SIGKILL)
                        killed.append(pid)
            with contextlib.suppress(FileNotFoundError):
                record.unlink()
        return killed
