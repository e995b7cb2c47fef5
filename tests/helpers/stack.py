"""The whole labci loop as real processes: `labci serve`, `labci worker`, `labci-runner start`.

Used by the end-to-end tests and the benchmark. Each process logs to a file in the
stack's directory; `dump_logs()` prints them when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from helpers.people import PASSWORD
from helpers.services import free_port
from helpers.waiting import wait_until

SECRET = "It's a Secret to Everybody"


@dataclass
class Stack:
    root: Path
    database_url: str
    redis_url: str
    github_url: str = "http://127.0.0.1:9"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    runner_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    _admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **more: str) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "LABCI_DATABASE_URL": self.database_url,
            "LABCI_REDIS_URL": self.redis_url,
            "LABCI_WEBHOOK_SECRET": SECRET,
            "LABCI_PUBLIC_URL": self.url,
            "LABCI_PORT": str(self.port),
            "LABCI_GITHUB_API_URL": self.github_url,
            "LABCI_GITHUB_TOKEN": "test-token",
            "LABCI_LEASE_S": "5",
            "LABCI_REAPER_INTERVAL_S": "1",
            "LABCI_OUTBOX_MIN_BACKOFF_S": "0.05",
            "LABCI_OUTBOX_MAX_BACKOFF_S": "1",
            # GitHub pacing scaled down 20×: the load test checks it holds (C4).
            "LABCI_OUTBOX_MIN_INTERVAL_S": "0.05",
            "LABCI_OUTBOX_RATE_LIMIT_WAIT_S": "0.5",
            "LABCI_SERVER_URL": self.url,
            "LABCI_RUNNER_HEARTBEAT_INTERVAL_S": "1",
            # The stack's own store, never ./labci-artifacts of whatever directory pytest ran in.
            "LABCI_ARTIFACTS_DIR": str(self.root / "artifacts"),
            **self.extra_env,
            **more,
        }

    def spawn(self, name: str, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        with open(self.root / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env or self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_server(self, *args: str) -> None:
        self.spawn("server", "labci_server.cli", "serve", *args)
        wait_until(self._healthy, what="labci serve to answer")

    def start_worker(self) -> None:
        self.spawn("worker", "labci_server.cli", "worker")

    def _healthy(self) -> bool:
        if self.procs["server"].poll() is not None:
            raise AssertionError(f"labci serve exited: {self.tail('server')}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def start_runner(
        self,
        name: str = "runner",
        labels: str = "self-hosted,linux,cpu",
        slots: int = 1,
        workdir: Path | None = None,
        **more: str,
    ) -> None:
        """Register and start a runner; `more`: its own settings (LABCI_RUNNER_EXECUTOR=…)."""
        workdir = workdir or self.root / name
        env = self.env(
            **more,
            LABCI_RUNNER_WORKDIR=str(workdir),
            LABCI_RUNNER_LABELS=labels,
            LABCI_RUNNER_SLOTS=str(slots),
            LABCI_RUNNER_NAME=name,
        )
        token = (
            subprocess.run(
                [sys.executable, "-m", "labci_server.cli", "runners", "token"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            [sys.executable, "-m", "labci_runner.cli", "register"],
            env={**env, "LABCI_REGISTRATION_TOKEN": token},
            capture_output=True,
            text=True,
            check=True,
        )
        self.runner_envs[name] = env
        self.spawn(name, "labci_runner.cli", "start", env=env)

    def restart_runner(self, name: str) -> None:
        """Start runner `name` again as its service manager would after a crash: the same
        settings and the identity it registered (runner.json), no new registration."""
        if name in self.procs:
            raise AssertionError(f"runner {name} is still running")
        self.spawn(name, "labci_runner.cli", "start", env=self.runner_envs[name])

    def start_all(self, runners: int = 1) -> None:
        self.start_server()
        self.start_worker()
        for i in range(runners):
            self.start_runner(f"runner{i}")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log(self, name: str) -> str:
        """Everything process `name` logged: assertions need the whole of it, since a slow
        machine logs more (retries, slow heartbeats) than any fixed tail holds."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, name: str, chars: int = 4000) -> str:
        return self.log(name)[-chars:]

    def dump_logs(self) -> str:
        return "\n".join(
            f"===== {p.stem} =====\n{self.tail(p.stem)}" for p in sorted(self.root.glob("*.log"))
        )

    def deliver(self, event: str, payload: dict[str, Any], delivery_id: str) -> httpx.Response:
        from forge_standin import headers

        body = json.dumps(payload).encode()
        return httpx.post(
            self.url + "/webhooks/github",
            content=body,
            headers=headers(event, delivery_id, body, SECRET),
            timeout=30,
        )

    def run_cli(
        self, *args: str, stdin: str | None = "", **env: str
    ) -> subprocess.CompletedProcess[str]:
        """`labci ARGS` against this stack, whatever its exit status (standard input:
        `stdin`, empty by default)."""
        return subprocess.run(
            [sys.executable, "-m", "labci_server.cli", *args],
            env=self.env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def cli(self, *args: str, stdin: str | None = None, **env: str) -> str:
        """`labci ARGS` against this stack's database; its standard output."""
        done = self.run_cli(*args, stdin=stdin, **env)
        if done.returncode != 0:
            raise AssertionError(f"labci {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def make_user(self, login: str, *, admin: bool = False, scope: str = "admin") -> str:
        """A local account and a personal API token of it (printed once by the CLI)."""
        extra = ["--admin"] if admin else []
        self.cli("users", "create", login, *extra, "--password-stdin", stdin=PASSWORD + "\n")
        return self.cli("tokens", "create", "--user", login, "--scope", scope).strip()

    @property
    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.make_user("admin", admin=True)
        return self._admin_token

    def api(self, path: str) -> Any:
        response = httpx.get(
            self.url + path, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def runs_for_commit(self, sha: str) -> list[dict[str, Any]]:
        return list(self.api(f"/api/v1/runs?commit={sha}"))

    def wait_for_runs_finished(self, sha: str, count: int) -> list[dict[str, Any]]:
        def done() -> bool:
            runs = self.runs_for_commit(sha)
            return len(runs) >= count and all(r["run"]["state"] == "finished" for r in runs)

        wait_until(done, what=f"{count} finished run(s) on {sha[:7]}")
        return [self.api(f"/api/v1/runs/{r['run']['id']}") for r in self.runs_for_commit(sha)]


def wait_for_statuses(
    standin: Any, key: tuple[str, str, str], predicate: Any, what: str
) -> list[dict[str, Any]]:
    wait_until(lambda: predicate(standin.statuses.get(key, [])), what=what)
    return list(standin.statuses.get(key, []))
