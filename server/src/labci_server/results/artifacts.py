"""Files a job keeps (`artifacts:`): received from its runner, stored on disk, listed, served.

Uploads are fenced like every other runner report: only the current attempt's token may
add files, and a file that arrives after its attempt moved on is discarded (409). The
body is streamed to disk and never held in memory; it may not grow past what is left of
the job's `artifacts.max-size`, nor pass MAX_FILES files. Paths are the file's place under
the job's $LABCI_OUTPUT: relative, no `..`; they are checked again here, since they come
from a machine that ran untrusted code. Files are served as downloads, never rendered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

from ..context import ServerContext
from ..db.models import Artifact
from ..db.queries import artifacts as artifact_queries
from ..db.queries import jobs as job_queries
from ..errors import BadRequest, Conflict, NotFound
from .uploads import authorize_attempt

MAX_FILES = 1000
MAX_PATH_CHARS = 512
DEFAULT_MAX_BYTES = 1024**3


class TooLarge(BadRequest):
    status_code = 413


def artifact_path_problem(path: str) -> str | None:
    if not path or len(path) > MAX_PATH_CHARS:
        return f"an artifact path has 1 to {MAX_PATH_CHARS} characters"
    if "\\" in path or "\x00" in path or path.startswith("/"):
        return "an artifact path is relative and uses '/'"
    parts = PurePosixPath(path).parts
    if any(part in ("", ".", "..") for part in parts) or PurePosixPath(*parts).as_posix() != path:
        return "path escapes workspace: an artifact path may not contain '.' or '..' parts"
    return None


def _allowance(job_spec: dict[str, Any]) -> int:
    artifacts = job_spec.get("job", {}).get("artifacts") or {}
    limit = artifacts.get("max-size")
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_BYTES


def _store_root(sc: ServerContext, job_id: int, attempt: int) -> Path:
    return Path(sc.settings.artifacts_dir) / str(job_id) / str(attempt)


async def store_artifact(
    sc: ServerContext,
    *,
    job_id: int,
    attempt: int,
    token: str | None,
    path: str,
    body: AsyncIterator[bytes],
) -> dict[str, Any]:
    problem = artifact_path_problem(path)
    if problem:
        raise BadRequest(problem)
    async with sc.sessions() as session:
        job = await authorize_attempt(session, job_id=job_id, attempt=attempt, token=token)
        stored = await artifact_queries.artifacts_of(session, job_id=job_id, attempt=attempt)
        left = _allowance(job.spec) - sum(a.size_bytes for a in stored)
    if len(stored) >= MAX_FILES:
        raise TooLarge(f"a job keeps at most {MAX_FILES} artifacts")
    root = _store_root(sc, job_id, attempt)
    target = root / path
    staging = root / f".upload-{uuid.uuid4().hex}"
    size, digest = await _receive(body, staging, left)
    try:
        async with sc.sessions() as session, session.begin():
            await authorize_attempt(session, job_id=job_id, attempt=attempt, token=token)
            await asyncio.to_thread(_place, staging, target)
            await artifact_queries.add_artifact(
                session,
                Artifact(job_id=job_id, attempt=attempt, path=path, size_bytes=size, sha256=digest),
            )
    except (Conflict, NotFound):
        await asyncio.to_thread(_discard, staging)
        raise
    return {"path": path, "size_bytes": size, "sha256": digest}


async def _receive(body: AsyncIterator[bytes], staging: Path, left: int) -> tuple[int, str]:
    """Stream the body to `staging`; refuse (and delete) it once it passes `left` bytes."""
    await asyncio.to_thread(staging.parent.mkdir, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle = await asyncio.to_thread(open, staging, "wb")
    try:
        async for chunk in body:
            size += len(chunk)
            if size > left:
                raise TooLarge(
                    f"artifacts over the job's max-size ({max(left, 0)} bytes were left)"
                )
            digest.update(chunk)
            await asyncio.to_thread(handle.write, chunk)
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(_discard, staging)
        raise
    await asyncio.to_thread(handle.close)
    return size, digest.hexdigest()


def _place(staging: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)


def _discard(staging: Path) -> None:
    staging.unlink(missing_ok=True)


async def artifact_download(sc: ServerContext, job_id: int, path: str) -> Path:
    """The stored file of the job's latest attempt that kept `path`."""
    if artifact_path_problem(path):
        raise NotFound("no such artifact")
    async with sc.sessions() as session:
        job = await job_queries.get_job(session, job_id)
        found = await artifact_queries.latest_artifact(session, job_id=job_id, path=path)
    if job is None or found is None:
        raise NotFound(f"job {job_id} kept no artifact {path}")
    file = _store_root(sc, job_id, found.attempt) / found.path
    if not await asyncio.to_thread(file.is_file):
        raise NotFound(f"the file of artifact {path} is gone")
    return file
