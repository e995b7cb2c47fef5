"""`labci --version`, `labci db upgrade|current|history`, `labci worker --check`."""

from __future__ import annotations

import pytest

from helpers.server import test_settings
from helpers.services import free_port
from labci_server.cli import main
from labci_server.db.migrate import revisions
from labci_server.workers import check_worker, make_worker


def test_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == "labci 0.1.0\n"


def test_db_current_follows_upgrades(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LABCI_DATABASE_URL", f"sqlite:///{tmp_path}/labci.db")
    head = revisions()[-1][0]
    assert main(["db", "current"]) == 1
    assert main(["db", "upgrade", "0002"]) == 0
    assert main(["db", "current"]) == 1
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    assert main(["db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        f"no labci schema yet (head is {head}); run `labci db upgrade`",
        "database schema is at 0002",
        f"0002 (head is {head}; run `labci db upgrade`)",
        f"database schema is at {head}",
        f"{head} (head)",
    ]
    assert lines[5] == "0001  initial schema"
    assert [line.split()[0] for line in lines[5:]] == [rev for rev, _ in revisions()]


async def test_worker_check_sees_a_working_worker(database_url, redis_url):
    settings = test_settings(database_url, redis_url)
    before = await check_worker(settings)
    worker = make_worker(settings, burst=True)
    try:
        await worker.main()  # one pass over an empty queue writes the health record
        after = await check_worker(settings)
    finally:  # Worker.close() would delete the record, through a deprecated redis call
        await worker.on_shutdown(worker.ctx)
        await worker.pool.aclose()
    assert before[0] is False
    assert "no worker is working here" in before[1]
    assert after[0] is True
    assert after[1].startswith("worker alive: ")
    assert "j_complete=0" in after[1]


async def test_worker_check_passes_while_redis_is_away(database_url):
    """The worker waits out an outage; a probe that failed would have it restarted for
    nothing (Kubernetes after three failed probes)."""
    away = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    healthy, said = await check_worker(test_settings(database_url, away))
    assert healthy is True
    assert said.startswith(f"Redis at 127.0.0.1:{away.split(':')[2]} unreachable")
    assert said.endswith("the worker waits for it")
