"""Read a job's metrics file from its output directory, confined and size-capped.

The file name comes from the workflow, and the file itself from experiment code: both are
untrusted. The path is resolved (following symlinks) and must stay inside the output
directory; only a regular file is read (a FIFO would block), and at most `max_bytes`.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from labci_runner.errors import MetricsInvalid
from labci_spec import MAX_METRICS_BYTES, MetricsError, parse_metrics_json


async def read_metrics(
    output_dir: Path, file: str, *, max_bytes: int = MAX_METRICS_BYTES
) -> dict[str, float]:
    """Parse `$LABCI_OUTPUT/<file>`; raise `MetricsInvalid` with a reason for a person."""
    data = await asyncio.to_thread(_read_confined, output_dir, file, max_bytes)
    if len(data) > max_bytes:
        raise MetricsInvalid(f"metrics invalid: {file} is larger than {max_bytes} bytes")
    try:
        return parse_metrics_json(data)
    except MetricsError as exc:
        raise MetricsInvalid(str(exc)) from exc  # already "metrics invalid: ..."


def _read_confined(output_dir: Path, file: str, max_bytes: int) -> bytes:
    """At most `max_bytes + 1` bytes of the file, so the caller can tell it is too big."""
    root = output_dir.resolve()
    path = (root / file).resolve()
    if not path.is_relative_to(root):
        raise MetricsInvalid(f"metrics invalid: {file}: path escapes workspace")
    try:
        # O_NOFOLLOW/O_NONBLOCK: the checked path is what gets opened, and opening a
        # FIFO planted by the experiment returns at once instead of hanging the runner.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MetricsInvalid(f"metrics file not found: {file}") from None
    except OSError as exc:
        raise MetricsInvalid(f"metrics invalid: {file}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MetricsInvalid(f"metrics invalid: {file}: not a regular file")
        return os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
