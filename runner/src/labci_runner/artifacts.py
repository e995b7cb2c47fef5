"""Collect a job's `artifacts:` from its output directory, and send them to the server.

The output directory was written by experiment code: untrusted. A file is kept only if it
is a regular file inside the directory, reached without following any link — a link (to
the runner's token, to a host file, to a directory elsewhere) is refused with "path
escapes workspace" when it points out of the directory, and never followed, so host bytes
never leave the runner. Files go in path order until `max_bytes` would be passed; each is
read with O_NOFOLLOW and streamed, never held in memory.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from labci_runner.client import AttemptChannel
from labci_runner.errors import LabciRunnerError, StaleAttempt
from labci_runner.logs import LogSink
from labci_spec import JobInstance
from labci_spec.globs import match_patterns

CHUNK_BYTES = 1024 * 1024
MAX_FILES = 1000


@dataclass(frozen=True)
class Collected:
    files: list[tuple[str, int]] = field(default_factory=list)  # (path, size)
    problems: list[str] = field(default_factory=list)


def collect_artifacts(output_dir: Path, patterns: Sequence[str], max_bytes: int) -> Collected:
    """The files to keep and, for the job's log, what was refused and why (blocking)."""
    root = output_dir.resolve()
    matched: list[tuple[str, int]] = []
    problems: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs):
            link = Path(folder) / name
            relative = link.relative_to(root).as_posix()
            if link.is_symlink() and _matches_below(patterns, relative):
                problems.append(
                    f"artifact {relative}/: path escapes workspace (a link to a directory)"
                )
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if not match_patterns(list(patterns), relative):
                continue
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                inside = path.resolve().is_relative_to(root)
                why = "links are not kept" if inside else "path escapes workspace"
                problems.append(f"artifact {relative}: {why}")
            elif stat.S_ISREG(info.st_mode):
                matched.append((relative, info.st_size))
    kept, total = [], 0
    for relative, size in sorted(matched):
        if total + size > max_bytes or len(kept) >= MAX_FILES:
            left = len(matched) - len(kept)
            problems.append(f"{left} artifact(s) not kept: over max-size ({max_bytes} bytes)")
            break
        kept.append((relative, size))
        total += size
    return Collected(kept, problems)


def _matches_below(patterns: Sequence[str], directory: str) -> bool:
    """Whether a pattern could name a file under `directory` (for reporting links)."""
    probe = f"{directory}/a"
    return match_patterns(list(patterns), probe) or any(
        p.startswith(directory + "/") for p in patterns
    )


def _open_confined(output_dir: Path, relative: str) -> int:
    root = output_dir.resolve()
    path = root / relative
    if not path.parent.resolve().is_relative_to(root):
        raise PermissionError(f"artifact {relative}: path escapes workspace")
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)


async def file_chunks(output_dir: Path, relative: str) -> AsyncIterator[bytes]:
    """A kept file's bytes; refuses it if it became a link since it was collected."""
    fd = await asyncio.to_thread(_open_confined, output_dir, relative)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PermissionError(f"artifact {relative}: not a regular file")
        while chunk := await asyncio.to_thread(os.read, fd, CHUNK_BYTES):
            yield chunk
    finally:
        os.close(fd)


async def keep_artifacts(
    channel: AttemptChannel, instance: JobInstance, output: Path, logs: LogSink
) -> None:
    """Upload the job's artifacts; what is refused or fails is said in the log."""
    spec = instance.job.artifacts
    if spec is None:
        return
    collected = await asyncio.to_thread(collect_artifacts, output, spec.paths, spec.max_size_bytes)
    last = len(instance.job.steps) - 1
    for problem in collected.problems:
        await logs.write(last, "system", problem)
    kept = 0
    for relative, size in collected.files:
        try:
            await channel.upload_artifact(relative, partial(file_chunks, output, relative))
            kept += size
        except StaleAttempt:
            raise
        except (LabciRunnerError, OSError) as exc:
            await logs.write(last, "system", f"artifact {relative} not kept: {exc}")
    count = len(collected.files)
    await logs.write(last, "system", f"kept {count} artifact(s), {kept} bytes")
