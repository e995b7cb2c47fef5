"""Check out a commit into a fresh workspace, from a cached bare mirror.

Layout under the runner's workdir::

    mirrors/<sha256(clone_url)[:16]>/   `git clone --mirror`, fetched only when a commit is missing
    jobs/<job_id>-<attempt>/src/        a local clone of the mirror, detached at the commit

This is on the job-start latency budget: with a warm mirror a checkout is two short git
processes (`cat-file`, then `reset --hard` in the workspace) and no network, and the server
hears of the job's start while they run (`jobs._start_and_check_out`). The workspace's
repository is what `git clone --local --no-checkout` of the mirror would make (the
mirror's packs hard-linked, its branches as `origin/*`, its tags, `origin` pointing at the
mirror), written here instead: the clone's three processes (`clone`, its shell and
`upload-pack`) took 10 ms on a quiet machine and 20 under load, against well under one
for the files. Hard links rather than pointers to the mirror (`--shared`): git works in
the checkout for a job user who may not read the mirrors (`executors.job_user`), and
inside containers. Fetches run with gc.auto=0.

A mirror fetched once per new commit would otherwise collect one loose object file per new
object, spread over up to 256 fan-out directories, and a local clone re-creates those
directories and links every file: measured here, 80 ms for a clone after 30 small fetches
against 10 ms from one pack. So a fetch keeps what it brings as a pack (`unpackLimit=1`),
and once a mirror holds more than a few packs (or loose objects from an older runner) it is
repacked geometrically (`git repack --geometric=2`: only the small packs are rewritten, so
the cost follows what was fetched, not the repository's size) in the background, after the
checkout that noticed it, never on a job's way to its first step. A repack deletes the packs
it replaced, so clones take the same per-mirror lock as fetches and repacks.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from labci_runner.errors import CheckoutFailed

logger = logging.getLogger(__name__)

STDERR_TAIL_CHARS = 400
COMMIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# More packs than this (or any loose object) and the mirror is repacked after the checkout.
MAX_PACKS = 4
LOOSE_OBJECT_DIR = re.compile(r"[0-9a-f]{2}")
# Config, not options, so that an older git ignores what it does not know. Besides the
# pack: no automatic maintenance (a process per fetch that finds nothing to do), and no
# check of which branches were force-pushed (a walk of their history nobody reads here).
FETCH_CONFIG = (
    *("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "fetch.unpackLimit=1"),
    *("-c", "fetch.showForcedUpdates=false", "-c", "advice.fetchShowForcedUpdates=false"),
)
REPACK = ("-c", "repack.writeBitmaps=false", "repack", "-d", "-q", "--geometric=2")
# What a workspace's repository takes from the mirror's objects/pack (bitmaps and .keep
# files only matter to a repository that serves fetches).
PACK_FILES = (".pack", ".idx", ".rev")


def _reason(stderr: str) -> str:
    """What to say of a failed git command: its `fatal:`/`error:` lines, which say why (git
    may follow them with long hints, as for "detected dubious ownership"), else the tail."""
    lines = [line for line in stderr.splitlines() if line.startswith(("fatal:", "error:"))]
    text = "\n".join(lines) if lines else stderr.strip()
    return text[-STDERR_TAIL_CHARS:]


class MirrorCache:
    """Owns `<workdir>/mirrors`; one instance per agent (it serialises fetches per URL)."""

    def __init__(self, workdir: Path, *, env: Mapping[str, str]) -> None:
        self.mirrors_dir = workdir / "mirrors"
        # Never wait for a password prompt: a runner has nobody to type one.
        self.env = {**env, "GIT_TERMINAL_PROMPT": "0"}
        self._locks: dict[Path, asyncio.Lock] = {}
        self._tidying: dict[Path, asyncio.Task[None]] = {}

    def mirror_path(self, clone_url: str) -> Path:
        digest = hashlib.sha256(clone_url.encode()).hexdigest()[:16]
        return self.mirrors_dir / digest

    def _lock(self, mirror: Path) -> asyncio.Lock:
        return self._locks.setdefault(mirror, asyncio.Lock())

    async def checkout(self, clone_url: str, commit_sha: str, dest: Path) -> None:
        """Make `dest` (must not exist) a working tree detached at `commit_sha`."""
        if not COMMIT_SHA.fullmatch(commit_sha):
            raise CheckoutFailed(f"not a full commit sha: {commit_sha[:80]!r}")
        mirror = self.mirror_path(clone_url)
        async with self._lock(mirror):
            await self._ensure_commit(clone_url, mirror, commit_sha)
            await asyncio.to_thread(local_repository, mirror, dest / ".git", commit_sha)
        self._tidy_later(mirror)
        await self._git("-C", str(dest), "reset", "--hard", "--quiet")

    async def ensure_commit(self, clone_url: str, commit_sha: str) -> Path:
        """Return the mirror of `clone_url`, cloned or fetched so that it has the commit."""
        mirror = self.mirror_path(clone_url)
        async with self._lock(mirror):
            await self._ensure_commit(clone_url, mirror, commit_sha)
        return mirror

    async def _ensure_commit(self, clone_url: str, mirror: Path, commit_sha: str) -> None:
        if not mirror.exists():  # noqa: ASYNC240 - one stat, cheaper than a thread hop
            await self._create_mirror(clone_url, mirror)
        if await self._has_commit(mirror, commit_sha):
            return
        await self._git("-C", str(mirror), *FETCH_CONFIG, "fetch", "--quiet", "--prune")
        if await self._has_commit(mirror, commit_sha):
            return
        raise CheckoutFailed(f"commit {commit_sha} not found in {clone_url}")

    def _tidy_later(self, mirror: Path) -> None:
        running = self._tidying.get(mirror)
        if (running is None or running.done()) and _untidy(mirror):
            self._tidying[mirror] = asyncio.create_task(self._tidy(mirror))

    async def _tidy(self, mirror: Path) -> None:
        async with self._lock(mirror):
            code, stderr = await self._run_git("-C", str(mirror), *REPACK)
            if code == 0:  # one file of refs to read per checkout, not one per new branch
                code, stderr = await self._run_git("-C", str(mirror), "pack-refs", "--all")
        if code != 0:
            # Only speed is at stake: the next checkout works from the packs as they are.
            logger.warning("repacking the mirror %s failed: %s", mirror.name, _reason(stderr))

    async def wait_repacks(self) -> None:
        """Wait for the background repacks under way (they never raise)."""
        await asyncio.gather(*self._tidying.values())

    async def aclose(self) -> None:
        """Stop background repacks (an interrupted repack leaves the old packs in place)."""
        tasks = [task for task in self._tidying.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _create_mirror(self, clone_url: str, mirror: Path) -> None:
        # Clone beside the final path and rename: a clone interrupted half-way must not
        # look like a usable mirror on the next start.
        partial = mirror.with_name(mirror.name + ".partial")
        await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
        mirror.parent.mkdir(parents=True, exist_ok=True)
        await self._git("clone", "--quiet", "--mirror", "--", clone_url, str(partial))
        partial.rename(mirror)

    async def _has_commit(self, mirror: Path, commit_sha: str) -> bool:
        code, _ = await self._run_git(
            "-C", str(mirror), "cat-file", "-e", f"{commit_sha}^{{commit}}"
        )
        return code == 0

    async def _git(self, *args: str) -> None:
        code, stderr = await self._run_git(*args)
        if code != 0:
            command = args[0] if args[0] != "-C" else args[2]
            raise CheckoutFailed(f"git {command} failed: {_reason(stderr)}")

    async def _run_git(self, *args: str) -> tuple[int, str]:
        try:
            proc = await asyncio.create_subprocess_exec(
                "git",
                *args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise CheckoutFailed(f"cannot run git: {exc}") from exc
        try:
            _, stderr = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()  # a cancelled job must not leave a fetch running
            await proc.wait()
            raise
        return proc.returncode or 0, stderr.decode("utf-8", errors="replace")


def _untidy(mirror: Path) -> bool:
    """Whether the mirror holds loose objects or more than MAX_PACKS packs."""
    try:
        objects = os.listdir(mirror / "objects")
        packs = os.listdir(mirror / "objects" / "pack")
    except OSError:
        return False
    if any(LOOSE_OBJECT_DIR.fullmatch(name) for name in objects):
        return True
    return sum(name.endswith(".pack") for name in packs) > MAX_PACKS


def local_repository(mirror: Path, git_dir: Path, commit_sha: str) -> None:
    """Write `git_dir`: the repository `git clone --local --no-checkout <mirror>` would
    make, with HEAD detached at `commit_sha` and no index yet (`reset --hard` writes it)."""
    packs = git_dir / "objects" / "pack"
    for sub in (packs, git_dir / "objects" / "info", git_dir / "refs" / "heads"):
        sub.mkdir(parents=True)
    (git_dir / "refs" / "tags").mkdir()
    for entry in os.scandir(mirror / "objects" / "pack"):
        if entry.name.endswith(PACK_FILES):
            _link_or_copy(Path(entry.path), packs / entry.name)
    # Loose objects: a mirror cloned from a local path, or fetched into by an older runner,
    # until its first repack.
    for entry in os.scandir(mirror / "objects"):
        if LOOSE_OBJECT_DIR.fullmatch(entry.name) and entry.is_dir():
            fan_out = git_dir / "objects" / entry.name
            fan_out.mkdir()
            for obj in os.scandir(entry.path):
                _link_or_copy(Path(obj.path), fan_out / obj.name)
    lines = [f"{sha} {_as_cloned(ref)}\n" for ref, sha in _mirror_refs(mirror)]
    (git_dir / "packed-refs").write_text("".join(lines))
    (git_dir / "HEAD").write_text(commit_sha + "\n")
    sha256 = len(commit_sha) == 64
    (git_dir / "config").write_text(
        "[core]\n"
        f"\trepositoryformatversion = {1 if sha256 else 0}\n"
        "\tfilemode = true\n"
        "\tbare = false\n"
        "\tlogallrefupdates = true\n"
        + ("[extensions]\n\tobjectformat = sha256\n" if sha256 else "")
        + '[remote "origin"]\n'
        f"\turl = {mirror}\n"
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )


def _as_cloned(ref: str) -> str:
    """Where a clone keeps a ref of its origin: branches as origin/*, tags as they are."""
    return (
        "refs/remotes/origin/" + ref.removeprefix("refs/heads/")
        if ref.startswith("refs/heads/")
        else ref
    )


def _mirror_refs(mirror: Path) -> Iterator[tuple[str, str]]:
    """The mirror's branches and tags, loose ones winning over packed ones (as in git)."""
    refs: dict[str, str] = {}
    try:
        packed = (mirror / "packed-refs").read_text()
    except FileNotFoundError:
        packed = ""
    for line in packed.splitlines():
        if line and line[0] not in "#^":
            sha, _, ref = line.partition(" ")
            refs[ref] = sha
    for kind in ("heads", "tags"):
        top = mirror / "refs" / kind
        for dirpath, _, files in os.walk(top):
            for name in files:
                path = Path(dirpath) / name
                try:
                    sha = path.read_text().strip()
                except OSError:
                    continue  # a ref a fetch is rewriting; the packed value stands
                if COMMIT_SHA.fullmatch(sha):
                    refs[f"refs/{kind}/{path.relative_to(top).as_posix()}"] = sha
    for ref in sorted(refs):
        if ref.startswith(("refs/heads/", "refs/tags/")):
            yield ref, refs[ref]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(source, target)  # another filesystem: what `clone --local` does too
