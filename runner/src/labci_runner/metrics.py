"""A job's metrics: files in its output directory, confined and size-capped, and lines.

The file names come from the workflow, and the files themselves from experiment code:
both are untrusted. Each path is resolved (following symlinks) and must stay inside
the output directory; only a regular file is read (a FIFO would block), and at most
`max_bytes`. A step may also print `::metric name=<name>::<value>` lines, which
`MetricLines` collects from stdout. A name may be reported by one source only: the
same name from two files, or from a file and a line, is an error rather than a
silent choice of one value. A job reports at most MAX_METRICS metrics in all.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from labci_runner.errors import MetricsInvalid
from labci_spec import MAX_METRICS_BYTES, MetricsError
from labci_spec.metrics import MAX_METRICS, parse_metric_line, parse_metrics


async def read_metrics(
    output_dir: Path, file: str, *, max_bytes: int = MAX_METRICS_BYTES
) -> dict[str, float]:
    """Parse `$LABCI_OUTPUT/<file>` by its suffix; raise `MetricsInvalid` with a reason."""
    data = await asyncio.to_thread(_read_confined, output_dir, file, max_bytes)
    if len(data) > max_bytes:
        raise MetricsInvalid(f"metrics invalid: {file} is larger than {max_bytes} bytes")
    try:
        return parse_metrics(file, data)
    except MetricsError as exc:
        raise MetricsInvalid(str(exc)) from exc  # already "metrics invalid: ..."


async def read_metrics_files(
    output_dir: Path, files: Sequence[str], *, max_bytes: int = MAX_METRICS_BYTES
) -> dict[str, float]:
    """The metrics of every file in `files`, read in order; each name from one file only."""
    metrics: dict[str, float] = {}
    reported_by: dict[str, str] = {}
    for file in files:
        for name, value in (await read_metrics(output_dir, file, max_bytes=max_bytes)).items():
            if name in reported_by:
                clash = f"'{name}' is reported by both {reported_by[name]} and {file}"
                raise MetricsInvalid(f"metrics invalid: {clash}")
            reported_by[name] = file
            metrics[name] = value
    _check_count(metrics)
    return metrics


class MetricLines:
    """Collects the `::metric` lines a job prints on stdout, in the order first seen.

    `feed` is called for every stdout line, so it never raises and ignores ordinary
    output cheaply. A later value of a name replaces the earlier one (a training loop
    reporting each epoch ends with its last). The first malformed command, or the
    first name beyond MAX_METRICS, is kept as `error`; the job should then be reported
    as "metrics invalid" instead of with a partial set.
    """

    def __init__(self) -> None:
        self._metrics: dict[str, float] = {}
        self._error: str | None = None

    def feed(self, line: str) -> None:
        try:
            parsed = parse_metric_line(line)
        except MetricsError as exc:
            self._error = self._error or str(exc)
            return
        if parsed is None:
            return
        name, value = parsed
        if name not in self._metrics and len(self._metrics) >= MAX_METRICS:
            too_many = f"more than {MAX_METRICS} metrics reported by ::metric lines"
            self._error = self._error or f"metrics invalid: {too_many}"
            return
        self._metrics[name] = value

    @property
    def metrics(self) -> dict[str, float]:
        """A copy of the metrics so far, each name with its latest value."""
        return dict(self._metrics)

    @property
    def error(self) -> str | None:
        """The first problem ("metrics invalid: ..."), or None while every line was fine."""
        return self._error


def merge_metrics(files: Mapping[str, float], lines: Mapping[str, float]) -> dict[str, float]:
    """The metrics from files and from `::metric` lines; a name may come from only one."""
    for name in lines:
        if name in files:
            clash = f"'{name}' is reported both by a metrics file and by a ::metric line"
            raise MetricsInvalid(f"metrics invalid: {clash}")
    merged = {**files, **lines}
    _check_count(merged)
    return merged


def _check_count(metrics: Mapping[str, float]) -> None:
    if len(metrics) > MAX_METRICS:
        raise MetricsInvalid(f"metrics invalid: more than {MAX_METRICS} metrics in all")


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
