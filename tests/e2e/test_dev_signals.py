"""`labci dev` stops every child on SIGTERM and SIGHUP as on Ctrl-C (issue 12): the real
`labci dev`, its real server, worker, runner and embedded redis-server. Its state
directory's logs hold what the processes logged (uvicorn's access log included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from helpers.services import free_port
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_dev_stops_every_child(tmp_path: Path, signum: signal.Signals) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCI_")}
    port = free_port()
    env.update(LABCI_PORT=str(port), LABCI_LOG_FORMAT="json")
    with open(tmp_path / "dev.log", "wb") as log:
        dev = subprocess.Popen(
            [sys.executable, "-m", "labci_server.cli", "dev", "--state-dir", str(state)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        runner_log = state / "runner.log"
        wait_until(
            lambda: (
                dev.poll() is not None
                or (runner_log.exists() and "listening on" in runner_log.read_text())
            ),
            what="the dev runner to listen",
        )
        assert dev.poll() is None, (tmp_path / "dev.log").read_text()
        children = psutil.Process(dev.pid).children(recursive=True)
        commands = [" ".join(child.cmdline()) for child in children]
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/runs").status_code == 200
        dev.send_signal(signum)
        assert dev.wait(timeout=60) == 0
    finally:
        if dev.poll() is None:
            dev.kill()
    assert any("redis-server" in c for c in commands)
    for part in ("serve", "worker", "labci_runner.cli start"):
        assert any(part in c for c in commands), commands
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    server_log = (state / "server.log").read_text().splitlines()
    assert any('"path": "/api/v1/runs"' in line and '"status": 200' in line for line in server_log)
    assert all(line.startswith("{") for line in server_log if line.strip())
