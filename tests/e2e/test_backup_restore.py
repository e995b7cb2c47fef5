"""Backup and restore as docs/operations.md tells an operator to do it (issue 12): while the
whole loop runs, dump the database (`pg_dump`, or SQLite's online `.backup`) and then the
artifact directory (`tar`); restore both into a fresh database and a fresh directory;
`labci serve` on the restored copy answers every run, log, metric, verdict, status and
artifact byte for byte as the original did, and new work continues after the old."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.services import missing_service
from helpers.stack import Stack, wait_for_statuses
from helpers.waiting import wait_until
from labci_server.db.migrate import upgrade

# Several phases, each waiting under the 120 s hang guard: together they may take longer
# than pytest's 180 s default on a loaded machine (two copies of the suite at once).
pytestmark = pytest.mark.timeout(600)

TRAIN = """\
name: train
on: {push: {branches: [main]}}
jobs:
  fit:
    runs-on: cpu
    steps:
      - name: train
        run: |
          echo "epoch 1 of 1"
          mkdir -p "$LABCI_OUTPUT/plots"
          printf '\\211PNG\\r\\n\\032\\n%s' "$(cat acc.txt)" > "$LABCI_OUTPUT/plots/loss.png"
          echo "{\\"acc\\": $(cat acc.txt), \\"loss\\": 0.231}" > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      compare:
        acc: {goal: max, tolerance: 0.005}
        loss: {goal: min, tolerance: 5%}
    artifacts: ["plots/*.png"]
  lint:
    runs-on: cpu
    steps:
      - run: echo "about to fail" && exit 3
"""

CONTEXTS = ("labci/train/fit", "labci/train/lint")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing_service(name, f"`{name}` is not on PATH (Debian: postgresql-client, sqlite3)")
    return path


def run_tool(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


def libpq_url(url: str, database: str | None = None) -> str:
    """The test's SQLAlchemy URL as the PostgreSQL tools take it (no `+asyncpg`)."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    return urlunsplit(parts._replace(path=f"/{database}")) if database else urlunsplit(parts)


def final(statuses: list[dict[str, Any]]) -> bool:
    done = {s["context"] for s in statuses if s["state"] != "pending"}
    return done >= set(CONTEXTS)


def produce_history(stack: Stack, github: Any) -> tuple[str, str]:
    """Two pushes on main: a base, then a better head compared with it. Returns both shas
    once every status reached the stand-in and nothing is left in the outbox."""
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/train.yml": TRAIN, "acc.txt": "0.910"})
    head = repo.commit({"acc.txt": "0.950"})
    stack.start_all()
    for before, sha, delivery in (("0" * 40, base, "push-base"), (base, head, "push-head")):
        payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", before, sha)
        assert stack.deliver("push", payload, delivery).status_code == 202
        wait_for_statuses(github.standin, ("octo", "exp", sha), final, f"statuses of {sha[:7]}")
    for sha in (base, head):
        wait_until(lambda sha=sha: settled(stack, sha), what=f"the run and outbox of {sha[:7]}")
    return base, head


def read(stack: Stack, path: str) -> Any:
    """An anonymous read: the stand-in's repositories are public."""
    response = httpx.get(stack.url + path, timeout=30)
    response.raise_for_status()
    return response.json()


def settled(stack: Stack, sha: str) -> bool:
    """The run of `sha` finished and nothing of it waits in the outbox."""
    runs = read(stack, f"/api/v1/runs?commit={sha}")
    if len(runs) != 1 or runs[0]["run"]["state"] != "finished":
        return False
    detail = read(stack, f"/api/v1/runs/{runs[0]['run']['id']}")
    return all(m["status"] != "pending" for m in detail["outbox"])


def snapshot(stack: Stack, shas: tuple[str, ...]) -> dict[str, Any]:
    """Everything the API says about the runs of `shas`, and every artifact's bytes."""
    runs = {}
    artifacts = {}
    for sha in shas:
        for row in read(stack, f"/api/v1/runs?commit={sha}"):
            detail = read(stack, f"/api/v1/runs/{row['run']['id']}")
            runs[row["run"]["id"]] = detail
            for job in detail["jobs"]:
                for kept in job["artifacts"]:
                    got = httpx.get(stack.url + kept["url"], timeout=10)
                    got.raise_for_status()
                    artifacts[kept["url"]] = got.content
    return {"listing": read(stack, "/api/v1/runs?limit=500"), "runs": runs, "artifacts": artifacts}


def check_history(snap: dict[str, Any], base: str, head: str) -> None:
    """What the original showed, so that 'identical' below is about something."""
    by_sha = {detail["run"]["commit_sha"]: detail for detail in snap["runs"].values()}
    assert set(by_sha) == {base, head}
    detail = by_sha[head]
    verdicts = {v["context"]: v for v in detail["verdicts"]}
    assert verdicts["labci/train/fit"]["state"] == "success"
    assert verdicts["labci/train/fit"]["description"].startswith("acc 0.95 (+0.04)")
    assert verdicts["labci/train/lint"]["state"] == "failure"
    jobs = {j["job"]["job_key"]: j for j in detail["jobs"]}
    fit = next(j for key, j in jobs.items() if key.endswith("fit"))
    assert fit["metrics"] == {"acc": 0.95, "loss": 0.231}
    assert "epoch 1 of 1" in [line["text"] for line in fit["logs"]]
    (plot,) = fit["artifacts"]
    assert snap["artifacts"][plot["url"]] == b"\x89PNG\r\n\x1a\n0.950"
    lint = next(j for key, j in jobs.items() if key.endswith("lint"))
    assert "about to fail" in [line["text"] for line in lint["logs"]]


@pytest.fixture
def restore_target(stack, tmp_path):
    """Where the backup goes back: a fresh PostgreSQL database beside the test's own (dropped
    afterwards), or a new SQLite file."""
    if not stack.database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    source = libpq_url(stack.database_url)
    fresh = urlsplit(source).path.lstrip("/") + "_restore"
    drop = [tool("dropdb"), "--if-exists", "--force", f"--maintenance-db={source}", fresh]
    run_tool(*drop)
    run_tool(tool("createdb"), f"--maintenance-db={source}", fresh)
    yield libpq_url(source, fresh)
    run_tool(*drop)


def back_up_database(stack: Stack, work: Path) -> Path:
    """`pg_dump`, or SQLite's online backup (`sqlite3 labci.db ".backup …"`), while labci
    runs."""
    if stack.database_url.startswith("postgresql"):
        dump = work / "labci.dump"
        source = libpq_url(stack.database_url)
        run_tool(tool("pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={source}")
    else:
        dump = work / "labci-backup.db"
        live = stack.database_url.removeprefix("sqlite:///")
        run_tool(tool("sqlite3"), live, f".backup '{dump}'")
    return dump


def restore_database(dump: Path, target: str) -> None:
    if target.startswith("postgresql"):
        run_tool(tool("pg_restore"), "--no-owner", f"--dbname={target}", str(dump))
    else:
        shutil.copyfile(dump, target.removeprefix("sqlite:///"))  # the backup is a database


def test_a_restored_backup_serves_every_run_log_verdict_and_artifact(
    stack, restore_target, tmp_path, redis_url, github
):
    """On the test database: PostgreSQL in CI, SQLite where LABCI_TEST_DATABASE_URL is unset."""
    base, head = produce_history(stack, github)
    before = snapshot(stack, (base, head))
    check_history(before, base, head)

    work = tmp_path / "backup"
    work.mkdir()
    dump = back_up_database(stack, work)
    # After the database: a file is on disk before its row commits and is never deleted,
    # so every artifact the dump knows of is in the archive.
    archive = work / "labci-artifacts.tar.gz"
    run_tool(tool("tar"), "-C", str(stack.root / "artifacts"), "-czf", str(archive), ".")
    for name in list(stack.procs):  # gone for good: nothing of it may touch Redis again
        stack.stop(name, signal.SIGKILL)

    restored = Stack(
        root=tmp_path / "restored-stack",
        database_url=restore_target,
        redis_url=redis_url,
        github_url=github.url,
    )
    (restored.root / "artifacts").mkdir(parents=True)
    restore_database(dump, restore_target)
    run_tool(tool("tar"), "-C", str(restored.root / "artifacts"), "-xzf", str(archive))
    try:
        restored.start_server()
        after = snapshot(restored, (base, head))
        assert after == before
        check_redelivery_and_new_work(restored, github, base, before)
    except BaseException:
        print(restored.dump_logs())
        raise
    finally:
        restored.stop_all()


def check_redelivery_and_new_work(
    restored: Stack, github: Any, base: str, before: dict[str, Any]
) -> None:
    """The dedupe keys came back (a redelivery is a duplicate), and so did the id sequences
    (a new delivery is stored after every old event)."""
    repo_url = f"{github.url}/octo/exp.git"
    payload = push_payload("octo", "exp", repo_url, "refs/heads/main", "0" * 40, base)
    assert restored.deliver("push", payload, "push-base").json()["duplicate"] is True
    fresh = restored.deliver("push", payload, "push-after-restore")
    assert fresh.status_code == 202
    old_events = [detail["event"]["id"] for detail in before["runs"].values()]
    assert fresh.json()["event_id"] > max(old_events)


def count_repositories(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT count(*) FROM repositories").fetchone()[0])


def test_sqlite_online_backup_keeps_what_is_still_in_the_wal(tmp_path):
    """Why the documented SQLite backup is `.backup` and not `cp`: while labci runs, what it
    committed may still be only in labci.db-wal. An open transaction is left out."""
    live = tmp_path / "labci.db"
    asyncio.run(upgrade(f"sqlite:///{live}"))
    writer = sqlite3.connect(live, isolation_level=None)  # a running server, in WAL mode
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("BEGIN")
        for n in range(200):
            writer.execute(
                "INSERT INTO repositories (provider, full_name, clone_url, created_at)"
                " VALUES ('git', ?, '', 0)",
                (f"lab/exp{n}",),
            )
        writer.execute("COMMIT")
        writer.execute("BEGIN")
        writer.execute(
            "INSERT INTO repositories (provider, full_name, clone_url, created_at)"
            " VALUES ('git', 'lab/uncommitted', '', 0)"
        )
        backup = tmp_path / "labci-backup.db"
        run_tool(tool("sqlite3"), str(live), f".backup '{backup}'")
        by_python = tmp_path / "labci-backup-py.db"  # the same through Python's backup API
        source, target = sqlite3.connect(live), sqlite3.connect(by_python)
        source.backup(target)
        source.close()
        target.close()
        plain = tmp_path / "labci-cp.db"
        shutil.copyfile(live, plain)
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    assert count_repositories(backup) == 200
    assert count_repositories(by_python) == 200
    assert count_repositories(plain) == 0
