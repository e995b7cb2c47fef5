"""`labci dev` hands its runner what a runner needs and none of the server's secrets: the
real `labci dev`, its real runner process, whose environment is read from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from helpers.services import free_port
from helpers.waiting import HANG_GUARD_S, wait_until

pytestmark = pytest.mark.e2e

SERVER_SECRETS = {
    "LABCI_WEBHOOK_SECRET": "dev-webhook-secret-value",
    "LABCI_GITHUB_TOKEN": "ghp_dev_github_token_value",
    "LABCI_SESSION_SECRET": "dev-session-secret-value",
    "LABCI_GITHUB_OAUTH_CLIENT_ID": "dev-oauth-client-id",
    "LABCI_GITHUB_OAUTH_CLIENT_SECRET": "dev-oauth-client-secret-value",
}
# Not labci's, and not a runner's business either: an allow-list leaves it out.
OPERATOR_SECRET = {"AWS_SECRET_ACCESS_KEY": "operator-aws-secret-value"}


def process_env(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def runner_process(dev: subprocess.Popen[bytes]) -> psutil.Process | None:
    for child in psutil.Process(dev.pid).children(recursive=True):
        try:
            if "labci_runner.cli" in child.cmdline() and "start" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def test_the_dev_runner_gets_no_server_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    database_url = f"sqlite:///{tmp_path / 'server-only-database.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCI_")}
    env.update(SERVER_SECRETS)
    env.update(OPERATOR_SECRET)
    env.update(
        LABCI_DATABASE_URL=database_url,
        LABCI_PORT=str(free_port()),
        LABCI_RUNNER_JOB_ENV="HF_HOME",  # the operator's runner settings do reach it
    )
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
        runner = runner_process(dev)
        assert runner is not None
        runner_env = process_env(runner.pid)
        server = next(p for p in psutil.Process(dev.pid).children() if "serve" in p.cmdline())
        server_env = process_env(server.pid)
    finally:
        dev.send_signal(signal.SIGINT)
        # `labci dev` gives each of its processes 15 s to stop, one after the other, and its
        # Redis 10 s: on a loaded machine (load average 9) that took longer than 60 s. The
        # hang guard, then a kill, so that no process outlives the test (I4).
        try:
            dev.wait(timeout=HANG_GUARD_S)
        finally:
            if dev.poll() is None:
                dev.kill()
                dev.wait()
    # The server has what it needs; the runner none of it.
    assert server_env["LABCI_WEBHOOK_SECRET"] == SERVER_SECRETS["LABCI_WEBHOOK_SECRET"]
    assert server_env["LABCI_DATABASE_URL"] == database_url
    text = "\n".join(f"{k}={v}" for k, v in runner_env.items())
    for value in [*SERVER_SECRETS.values(), *OPERATOR_SECRET.values(), database_url]:
        assert value not in text
    for kept in ("webhook-secret", "secret-key"):  # secrets `labci dev` made and keeps
        if (state / kept).exists():
            assert (state / kept).read_text().strip() not in text
    assert "server-only-database" not in text
    assert not {name for name in runner_env if name.startswith("LABCI_")} - {
        "LABCI_SERVER_URL",
        "LABCI_REDIS_URL",
        "LABCI_RUNNER_WORKDIR",
        "LABCI_RUNNER_LABELS",
        "LABCI_RUNNER_JOB_ENV",
    }
    assert runner_env["LABCI_SERVER_URL"] == server_env["LABCI_PUBLIC_URL"]
    assert runner_env["LABCI_REDIS_URL"].startswith("redis://127.0.0.1:")
    assert runner_env["LABCI_RUNNER_WORKDIR"] == str(state.resolve() / "runner")
    assert runner_env["LABCI_RUNNER_JOB_ENV"] == "HF_HOME"
