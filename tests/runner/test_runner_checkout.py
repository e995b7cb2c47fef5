"""Checkout from real bare repositories through the mirror cache."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from labci_runner.checkout import MirrorCache
from labci_runner.errors import CheckoutFailed
from labci_runner.settings import runner_environment

GIT_ID = ["-c", "user.name=labci test", "-c", "user.email=test@labci.invalid"]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True, capture_output=True)
    return done.stdout.decode().strip()


class Origin:
    """A bare repository plus a working clone that pushes commits into it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "origin.git"
        self.work = root / "work"
        git("init", "--quiet", "--bare", "-b", "main", str(self.bare), cwd=root)
        git("clone", "--quiet", str(self.bare), str(self.work), cwd=root)

    def commit(self, name: str, text: str) -> str:
        (self.work / name).write_text(text)
        git("add", name, cwd=self.work)
        git("commit", "--quiet", "-m", f"add {name}", cwd=self.work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path)


@pytest.fixture
def mirrors(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "runner", env=runner_environment())


async def test_checkout_detaches_at_the_commit(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    sha = origin.commit("train.py", "print('v1')\n")
    dest = tmp_path / "jobs" / "1-1" / "src"
    await mirrors.checkout(str(origin.bare), sha, dest)
    assert (dest / "train.py").read_text() == "print('v1')\n"
    assert git("rev-parse", "HEAD", cwd=dest) == sha
    assert mirrors.mirror_path(str(origin.bare)).is_dir()


async def test_new_commit_is_fetched_into_the_existing_mirror(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    first = origin.commit("a.txt", "one\n")
    await mirrors.checkout(str(origin.bare), first, tmp_path / "w1")
    mirror = mirrors.mirror_path(str(origin.bare))
    second = origin.commit("b.txt", "two\n")
    assert subprocess.run(["git", "-C", str(mirror), "cat-file", "-e", second]).returncode != 0

    await mirrors.checkout(str(origin.bare), second, tmp_path / "w2")
    assert (tmp_path / "w2" / "b.txt").read_text() == "two\n"
    assert git("cat-file", "-t", second, cwd=mirror) == "commit"
    assert sorted(p.name for p in mirror.parent.iterdir()) == [mirror.name]


async def test_warm_checkout_is_fast(origin: Origin, mirrors: MirrorCache, tmp_path: Path) -> None:
    sha = origin.commit("a.txt", "one\n")
    await mirrors.checkout(str(origin.bare), sha, tmp_path / "cold")
    started = time.monotonic()
    await mirrors.checkout(str(origin.bare), sha, tmp_path / "warm")
    elapsed_s = time.monotonic() - started
    # The whole job overhead budget is 300 ms; a warm checkout must be a small part of it.
    assert elapsed_s < 0.25, f"warm checkout took {elapsed_s * 1000:.0f} ms"


async def test_unknown_commit_fails_with_a_reason(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    origin.commit("a.txt", "one\n")
    missing = "0" * 40
    with pytest.raises(CheckoutFailed, match=f"commit {missing} not found in"):
        await mirrors.checkout(str(origin.bare), missing, tmp_path / "w")


async def test_unreachable_repository_carries_git_stderr(
    mirrors: MirrorCache, tmp_path: Path
) -> None:
    with pytest.raises(CheckoutFailed, match="git clone failed: .*does not exist|not a git"):
        await mirrors.checkout(str(tmp_path / "nope.git"), "1" * 40, tmp_path / "w")
    assert not mirrors.mirror_path(str(tmp_path / "nope.git")).exists()


async def test_option_like_sha_is_refused(mirrors: MirrorCache, tmp_path: Path) -> None:
    with pytest.raises(CheckoutFailed, match="not a full commit sha"):
        await mirrors.checkout("https://example.invalid/r.git", "--upload-pack=x", tmp_path / "w")


async def test_a_refusal_names_gits_reason_before_its_hints(
    mirrors: MirrorCache, tmp_path: Path
) -> None:
    """A repository owned by another user: git says why on its `fatal:` line, then prints
    hints naming the (here long) path, more than the message keeps; it keeps the reason."""
    deep = tmp_path / ("a-long-directory-name-" * 8)
    deep.mkdir()
    origin = Origin(deep)
    sha = origin.commit("a.txt", "a")
    subprocess.run(["chown", "-R", "54321:54321", str(origin.bare)], check=True)
    with pytest.raises(CheckoutFailed, match="fatal: detected dubious ownership") as caught:
        await mirrors.checkout(str(origin.bare), sha, tmp_path / "w")
    assert len(str(caught.value)) < 500


async def test_many_fetches_leave_the_mirror_in_a_few_packs(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    """Fetched objects arrive as packs, and the repack after a checkout keeps them few: a
    local clone of a mirror full of loose objects or packs costs a directory or link per
    file on every job."""
    mirror = mirrors.mirror_path(str(origin.bare))
    packs_seen = []
    for n in range(12):
        sha = origin.commit(f"f{n}.txt", str(n))
        dest = tmp_path / "jobs" / f"{n}" / "src"
        await mirrors.checkout(str(origin.bare), sha, dest)
        assert (dest / f"f{n}.txt").read_text() == str(n)
        await mirrors.wait_repacks()
        packs_seen.append(len(list((mirror / "objects" / "pack").glob("*.pack"))))
        loose = [d.name for d in (mirror / "objects").iterdir() if len(d.name) == 2]
        # The first mirror is a local clone of an origin holding loose objects: the
        # repack after the first checkout packs them.
        assert loose == [], f"loose objects left after checkout {n}"
    assert max(packs_seen) <= 5, packs_seen
    assert git("rev-parse", "HEAD", cwd=tmp_path / "jobs" / "11" / "src") == sha


async def test_a_checkout_waits_for_a_repack_of_its_mirror(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    """A repack deletes the packs it replaced; a clone running beside it would miss them."""
    first = origin.commit("a.txt", "a")
    await mirrors.checkout(str(origin.bare), first, tmp_path / "j1")
    second = origin.commit("b.txt", "b")
    # The first checkout left a repack running (the mirror was cloned from loose objects);
    # the second starts at once and must see a whole mirror.
    await mirrors.checkout(str(origin.bare), second, tmp_path / "j2")
    assert (tmp_path / "j2" / "b.txt").read_text() == "b"
    await mirrors.aclose()


async def test_the_workspace_repository_is_what_a_clone_would_be(
    origin: Origin, mirrors: MirrorCache, tmp_path: Path
) -> None:
    """Jobs compare against the base branch and describe their commit from tags: the
    workspace has the origin's branches as origin/*, its tags, a clean status, and a
    repository git can check in full."""
    base = origin.commit("train.py", "print('v1')\n")
    git("tag", "-a", "v1.0", "-m", "first", cwd=origin.work)
    git("push", "--quiet", "origin", "v1.0", cwd=origin.work)
    # Both the packed refs and the loose ones a later fetch writes are carried over: the
    # mirror is made (and its refs packed) before the feature branch is pushed.
    await mirrors.checkout(str(origin.bare), base, tmp_path / "first")
    await mirrors.wait_repacks()
    git("checkout", "--quiet", "-b", "feature", cwd=origin.work)
    (origin.work / "eval.py").write_text("print('eval')\n")
    git("add", "eval.py", cwd=origin.work)
    git("commit", "--quiet", "-m", "add eval.py", cwd=origin.work)
    git("push", "--quiet", "origin", "HEAD:feature", cwd=origin.work)
    head = git("rev-parse", "HEAD", cwd=origin.work)
    dest = tmp_path / "jobs" / "1-1" / "src"
    await mirrors.checkout(str(origin.bare), head, dest)
    assert git("rev-parse", "HEAD", cwd=dest) == head
    assert git("status", "--porcelain", cwd=dest) == ""
    assert sorted(git("branch", "-r", "--format=%(refname:short)", cwd=dest).split()) == [
        "origin/feature",
        "origin/main",
    ]
    assert git("rev-parse", "origin/main", cwd=dest) == base
    assert git("describe", "--tags", cwd=dest).startswith("v1.0-1-g")
    assert git("diff", "--name-only", "origin/main", cwd=dest) == "eval.py"
    git("fsck", "--no-progress", "--connectivity-only", cwd=dest)
    # Hard links, never pointers into the mirror: a job user who cannot read the mirrors,
    # or a container that does not see them, still has every object.
    assert not (dest / ".git" / "objects" / "info" / "alternates").exists()
