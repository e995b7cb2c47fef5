"""Workspace directories kept on the runner between jobs: a workflow's `cache:`.

Datasets and pip caches make up most of a small experiment's time on a fresh machine. A
job's `cache.paths` (inside the workspace) are restored before its steps when an entry
for its `cache.key` exists in its scope, and saved after a successful job that found none. Entries never
change once written, like GitHub's caches, so a key should name what it holds
(`pip-${{ hashFiles('requirements.txt') }}`).

Scopes keep untrusted code from poisoning what trusted jobs restore: a pull request saves
to its own scope and restores from it or from its base branch; a push saves to and
restores from its branch. Entries of one repository never reach another. The cache is
bounded: an entry larger than `max_entry_bytes` is not saved, and the least recently used
entries are removed once the total passes `max_bytes`.

Blocking file work: call these from a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labci_spec.globs import match_patterns

HASH_FILES_MAX_FILES = 100_000
# Entries restored this recently are never evicted: a restore copies for a while.
IN_USE_S = 15 * 60.0
_STAGING = ".staging-"
MAX_CACHE_ENTRY_BYTES = 5 * 1024**3
_CHUNK_BYTES = 1024 * 1024


def hash_files(workspace: Path, patterns: Sequence[str]) -> str:
    """GitHub's `hashFiles()`: a sha256 over the sha256 of each matching file, in path
    order; "" when no file matches. Patterns match paths relative to the workspace."""
    root = workspace.resolve()
    matched: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in files:
            relative = (Path(folder) / name).relative_to(root).as_posix()
            if match_patterns(list(patterns), relative):
                matched.append(relative)
                if len(matched) > HASH_FILES_MAX_FILES:
                    raise ValueError(f"hashFiles matched more than {HASH_FILES_MAX_FILES} files")
    if not matched:
        return ""
    total = hashlib.sha256()
    for relative in sorted(matched):
        path = root / relative
        if path.is_symlink() or not path.is_file():
            continue  # a link could lead out of the workspace; hash only real files
        one = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                one.update(chunk)
        total.update(one.digest())
    return total.hexdigest()


@dataclass(frozen=True)
class CacheScope:
    """Where a job may restore from (in order) and where it saves."""

    repository: str
    restore_from: tuple[str, ...]
    save_to: str


def cache_scope(repository: str, env: Mapping[str, str]) -> CacheScope:
    """The scope of a job, from the LABCI_* variables the server sets."""
    if env.get("LABCI_EVENT") == "pull_request":
        mine = f"pr:{env.get('LABCI_PR_NUMBER', '?')}"
        base = f"branch:{env.get('LABCI_BASE_BRANCH', '')}"
        return CacheScope(repository, (mine, base), mine)
    mine = f"branch:{env.get('LABCI_BRANCH', '')}"
    return CacheScope(repository, (mine,), mine)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Restored:
    """What a restore did: whether an entry was found, and a line for the job's log."""

    hit: bool
    message: str


class RunnerCache:
    def __init__(self, root: Path, *, max_bytes: int, max_entry_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes

    def _entry(self, repository: str, scope: str, key: str) -> Path:
        return self.root / _digest(repository) / _digest(scope) / _digest(key)

    def restore(
        self, scope: CacheScope, key: str, workspace: Path, paths: Sequence[str]
    ) -> Restored:
        """Copy a saved entry's paths into the workspace, replacing what is there.

        Nothing is ever written through a link: whatever the checkout holds at a cached
        path is removed first (a link itself, not what it points to), and a path with a
        link among its parent directories is refused.
        """
        for candidate in scope.restore_from:
            entry = self._entry(scope.repository, candidate, key)
            meta = entry / "meta.json"
            if not meta.is_file():
                continue
            os.utime(meta)  # first: eviction spares entries in use (see _evict)
            for relative in paths:
                source = entry / "files" / relative
                if source.exists() or source.is_symlink():
                    target = _fresh_target(workspace, relative)
                    _copy(source, target)
            return Restored(True, f"cache restored: key {key!r} from {candidate}")
        return Restored(False, f"cache miss: key {key!r}")

    def save(self, scope: CacheScope, key: str, workspace: Path, paths: Sequence[str]) -> str:
        """Keep `paths` under `key` in the job's scope; call only after a miss."""
        entry = self._entry(scope.repository, scope.save_to, key)
        if (entry / "meta.json").is_file():
            return f"cache not saved: key {key!r} exists already (entries never change)"
        staging = self.root / f"{_STAGING}{uuid.uuid4().hex}"
        try:
            size, kept = 0, 0
            for relative in paths:
                source = _inside(workspace, relative)
                if not (source.exists() or source.is_symlink()):
                    continue
                size += _size(source) if _is_real_dir(source) else _file_size(source)
                if size > self.max_entry_bytes:  # checked before copying, not after
                    return f"cache not saved: more than {self.max_entry_bytes} bytes"
                _copy(source, staging / "files" / relative)
                kept += 1
            if not kept:
                return f"cache not saved: none of {', '.join(paths)} exists"
            meta = {"key": key, "scope": scope.save_to, "size_bytes": size, "saved_at": time.time()}
            (staging / "meta.json").write_text(json.dumps(meta))
            entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                staging.rename(entry)
            except OSError:
                return f"cache not saved: key {key!r} was saved by another job meanwhile"
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._evict(keep=entry)
        return f"cache saved: key {key!r} to {scope.save_to} ({size} bytes)"

    def _evict(self, *, keep: Path) -> None:
        """Remove the least recently used entries while the cache is over its size.

        An entry restored in the last IN_USE_S seconds is spared, so a job never sees
        half an entry; staging directories a crashed save left behind are removed.
        """
        now = time.time()
        for staging in self.root.glob(f"{_STAGING}*"):
            with contextlib.suppress(OSError):
                if now - staging.stat().st_mtime > IN_USE_S:
                    shutil.rmtree(staging, ignore_errors=True)
        ages: dict[Path, float] = {}
        for meta in self.root.glob("*/*/*/meta.json"):
            with contextlib.suppress(OSError):  # another job may be evicting too
                ages[meta.parent] = meta.stat().st_mtime
        sizes = {entry: _size(entry) for entry in ages}
        total = sum(sizes.values())
        for entry in sorted(ages, key=ages.__getitem__):
            if total <= self.max_bytes:
                break
            if entry != keep and now - ages[entry] > IN_USE_S:
                shutil.rmtree(entry, ignore_errors=True)
                total -= sizes[entry]


def _inside(workspace: Path, relative: str) -> Path:
    """`relative` under the workspace; refused if a link among its parents leads anywhere.

    The path itself may be a link (it is kept as a link, never followed).
    """
    root = workspace.resolve()
    path = root / relative
    current = root
    for part in Path(relative).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ValueError(f"cache path {relative!r} goes through a link ({part})")
    if not path.parent.resolve().is_relative_to(root):
        raise ValueError(f"cache path {relative!r} escapes the workspace")
    return path


def _fresh_target(workspace: Path, relative: str) -> Path:
    """Where a restored path goes, with whatever the checkout had there removed."""
    target = _inside(workspace, relative)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)  # rmtree does not follow links inside the tree
    return target


def _copy(source: Path, target: Path) -> None:
    """Copy a file, link or directory to a `target` that does not exist; links stay links."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_real_dir(source):
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _file_size(path: Path) -> int:
    return 0 if path.is_symlink() else path.stat().st_size


def _size(folder: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(base) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total
