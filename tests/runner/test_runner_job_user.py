"""Host steps as `LABCI_RUNNER_JOB_USER`: a real unprivileged user, real processes, real git.

The step cannot read the runner's token, mirrors or cache; it owns its job's directories
(checkout, output, HOME, TMPDIR), git works in its checkout, and the runner (root) still
reads its metrics, keeps its cache and removes its directory afterwards.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_kit import JobDirs, Recorder, make_context, make_job

from helpers.gitrepo import make_repo
from helpers.jobuser import job_user, reachable_dir
from labci_runner import agent
from labci_runner.agent import RunnerIdentity, save_identity
from labci_runner.cache import CacheScope, RunnerCache
from labci_runner.checkout import MirrorCache
from labci_runner.errors import ConfigError
from labci_runner.executors.job_user import JobUser
from labci_runner.executors.process import ProcessExecutor
from labci_runner.logs import LogSink
from labci_runner.metrics import read_metrics
from labci_runner.settings import Settings, runner_environment

TOKEN = "labcirun_job_user_test_token"


@pytest.fixture
def user() -> JobUser:
    entry = job_user()
    return JobUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def workdir(user: JobUser) -> Iterator[Path]:
    """A registered runner's workdir, made private as `labci-runner start` does."""
    with reachable_dir("labci-job-user-") as root:
        settings = Settings(workdir=root / "runner", job_user=user.name)
        save_identity(root / "runner" / "runner.json", RunnerIdentity("http://x", 1, TOKEN, "q"))
        agent.secure_workdir(settings, user)
        yield root / "runner"


@pytest.fixture
def dirs(workdir: Path) -> JobDirs:
    """A job's directories as the job flow makes them: the runner's, until the executor
    hands them over."""
    job_dir = workdir / "jobs" / "7-1"
    found = JobDirs(job_dir / "src", job_dir / "output", job_dir / "scratch")
    for path in (found.workspace, found.output, found.scratch):
        path.mkdir(parents=True)
    return found


def executor(user: JobUser) -> ProcessExecutor:
    return ProcessExecutor(base_env=runner_environment(), job_user=user, grace_s=0.5)


async def test_steps_run_as_the_job_user_and_cannot_read_the_runners_files(
    user: JobUser, workdir: Path, dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    (workdir / "mirrors" / "some-repo").mkdir()
    job = make_job(
        'id -u; id -g; id -G; echo "user=$USER home=$HOME"',
        f"cat {workdir}/runner.json || echo 'runner.json: refused'",
        f"ls {workdir}/mirrors || echo 'mirrors: refused'",
        f"ls {workdir} || echo 'workdir: refused'",
        'mkdir -p "$HOME/.cache" && echo ok > "$HOME/.cache/x" && echo ok > "$TMPDIR/t"',
        'echo \'{"accuracy": 0.75}\' > "$LABCI_OUTPUT/metrics.json"',
    )
    outcome = await executor(user).run(job, make_context(dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "success", recorder.texts()
    out = recorder.texts("stdout")
    assert out[:3] == [str(user.uid), str(user.gid), str(user.gid)]  # no supplementary groups
    assert out[3] == f"user={user.name} home={dirs.scratch / 'home'}"
    for what in ("runner.json", "mirrors", "workdir"):
        assert f"{what}: refused" in out
    assert any("Permission denied" in line for line in recorder.texts("stderr"))
    assert TOKEN not in "\n".join(recorder.texts())
    # The job's directories are the job user's and private; what it wrote, the runner reads.
    for path in (dirs.workspace, dirs.output, dirs.scratch, dirs.scratch / "home"):
        info = path.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (user.uid, 0o700), path
    assert (dirs.output / "metrics.json").stat().st_uid == user.uid
    assert await read_metrics(dirs.output, "metrics.json") == {"accuracy": 0.75}
    shutil.rmtree(dirs.workspace.parent)
    assert not dirs.workspace.parent.exists()


def test_the_runners_files_are_private(user: JobUser, workdir: Path) -> None:
    modes = {
        path: path.stat().st_mode & 0o777
        for path in (workdir, workdir / "jobs", workdir / "mirrors", workdir / "cache")
    }
    assert modes == {
        workdir: 0o711,
        workdir / "jobs": 0o711,
        workdir / "mirrors": 0o700,
        workdir / "cache": 0o700,
    }
    assert (workdir / "runner.json").stat().st_mode & 0o777 == 0o600


async def test_git_works_in_the_checkout_and_the_mirror_stays_the_runners(
    user: JobUser, workdir: Path, dirs: JobDirs, sink: LogSink, recorder: Recorder, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "origin")
    sha = repo.commit({"train.py": "print('hi')\n"})
    mirrors = MirrorCache(workdir, env=runner_environment())
    dirs.workspace.rmdir()  # the checkout makes it
    await mirrors.checkout(str(repo.bare), sha, dirs.workspace)
    job = make_job(
        "git log -1 --format=%H; git status --porcelain; echo 'status done'",
        # Objects the job shares with the mirror are not its own: it cannot rewrite them.
        "for f in $(find .git/objects -type f -links +1); do"
        ' chmod u+w "$f" 2>/dev/null && echo "took $f"; done; echo \'objects checked\'',
    )
    outcome = await executor(user).run(job, make_context(dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "success", recorder.texts()
    assert recorder.texts("stdout") == [sha, "status done", "objects checked"]
    shared = [
        p
        for p in (dirs.workspace / ".git" / "objects").rglob("*")
        if p.is_file() and p.stat().st_nlink > 1
    ]
    assert shared  # the checkout's objects are the mirror's files, not copies
    assert {p.stat().st_uid for p in shared} == {os.geteuid()}
    assert (dirs.workspace / "train.py").stat().st_uid == user.uid
    mirror = mirrors.mirror_path(str(repo.bare))
    owners = {p.stat().st_uid for p in (mirror / "objects").rglob("*") if p.is_file()}
    assert owners == {os.geteuid()}


async def test_the_cache_restores_into_and_saves_from_a_job_users_workspace(
    user: JobUser, workdir: Path, dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    cache = RunnerCache(workdir / "cache", max_bytes=10**7, max_entry_bytes=10**6)
    scope = CacheScope("repo", ("branch:main",), "branch:main")
    (dirs.workspace / "data").mkdir()
    (dirs.workspace / "data" / "seed.txt").write_text("cached\n")
    assert cache.save(scope, "k1", dirs.workspace, ["data"]).startswith("cache saved")
    shutil.rmtree(dirs.workspace / "data")
    assert cache.restore(scope, "k1", dirs.workspace, ["data"]).hit
    job = make_job("cat data/seed.txt; echo more >> data/seed.txt; echo new > data/new.txt")
    outcome = await executor(user).run(job, make_context(dirs, sink, recorder))
    await sink.close()
    assert outcome.outcome == "success", recorder.texts()
    assert recorder.texts("stdout") == ["cached"]
    assert (dirs.workspace / "data" / "new.txt").stat().st_uid == user.uid
    assert cache.save(scope, "k2", dirs.workspace, ["data"]).startswith("cache saved")
    restored = dirs.output / "again"
    restored.mkdir()
    assert cache.restore(scope, "k2", restored, ["data"]).hit
    assert (restored / "data" / "seed.txt").read_text() == "cached\nmore\n"


def test_an_unknown_or_root_job_user_is_refused() -> None:
    with pytest.raises(ConfigError, match="LABCI_RUNNER_JOB_USER: no user 'no-such-user'"):
        agent.job_user_of(Settings(job_user="no-such-user"))
    with pytest.raises(ConfigError, match="steps must not run as root"):
        agent.job_user_of(Settings(job_user="0"))


def test_a_runner_that_is_not_root_cannot_switch_users(
    user: JobUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: pwd.getpwnam(user.name).pw_uid)
    with pytest.raises(ConfigError) as caught:
        agent.job_user_of(Settings(job_user=user.name))
    assert str(caught.value) == (
        f"LABCI_RUNNER_JOB_USER={user.name}: the runner must run as root to run steps as"
        " another user"
    )


def test_a_workdir_the_job_user_cannot_reach_is_refused(user: JobUser, tmp_path: Path) -> None:
    # pytest's tmp_path sits under /tmp/pytest-of-root, mode 0700.
    settings = Settings(workdir=tmp_path / "runner", job_user=user.name)
    with pytest.raises(ConfigError, match=f"the job user {user.name} cannot enter /tmp/pytest-of"):
        agent.secure_workdir(settings, user)


def test_a_root_runner_without_a_job_user_warns_once(
    user: JobUser, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="labci_runner.agent"):
        assert agent.job_user_of(Settings()) is None
        assert agent.job_user_of(Settings(executor="docker")) is None
    assert [r.getMessage() for r in caplog.records] == [
        "steps of host jobs run as root and can read the runner's credentials"
        " (runner.json, mirrors, cache): set LABCI_RUNNER_JOB_USER to an unprivileged user"
    ]
