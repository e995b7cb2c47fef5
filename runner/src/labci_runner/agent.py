"""The runner agent: registration, heartbeats and the arq worker, as one asyncio program.

`register(settings)` trades a single-use registration token for a runner token and a
queue name, stored in `<workdir>/runner.json` (mode 0600). `start(settings)` runs the
heartbeat loop and the arq worker side by side until SIGTERM/SIGINT, then stops taking
work, stops the running jobs (reported as "error": the runner went away, the server may
retry) and closes its connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from arq.worker import Worker

from labci_runner.checkout import MirrorCache
from labci_runner.client import ServerClient
from labci_runner.errors import ConfigError
from labci_runner.executors.process import ProcessExecutor
from labci_runner.jobs import JobRuntime, RunningJobs
from labci_runner.settings import Settings, inherited_job_env
from labci_runner.worker import build_worker, redis_pool, stop_worker

logger = logging.getLogger(__name__)

# How long shutdown waits for stopped jobs to report before closing the worker anyway.
SHUTDOWN_REPORT_S = 30.0


@dataclass(frozen=True)
class RunnerIdentity:
    """The contents of runner.json."""

    server_url: str
    runner_id: int
    runner_token: str
    queue_name: str


def identity_path(settings: Settings) -> Path:
    return settings.workdir / "runner.json"


def require_server_url(settings: Settings) -> str:
    if not settings.server_url:
        raise ConfigError("LABCI_SERVER_URL is not set")
    return settings.server_url


async def register(settings: Settings) -> RunnerIdentity:
    """Register with the server and store the answer in runner.json."""
    server_url = require_server_url(settings)
    if settings.registration_token is None:
        raise ConfigError("LABCI_REGISTRATION_TOKEN is not set (or pass --token)")
    async with ServerClient(server_url) as client:
        answer = await client.register(
            settings.registration_token.get_secret_value(),
            name=settings.name,
            labels=settings.labels,
            slots=settings.slots,
        )
    identity = RunnerIdentity(server_url, answer.runner_id, answer.runner_token, answer.queue_name)
    save_identity(identity_path(settings), identity)
    return identity


def save_identity(path: Path, identity: RunnerIdentity) -> None:
    """Write runner.json atomically, readable by this user only (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".json.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(identity), handle, indent=2)
    os.replace(partial, path)


def load_identity(path: Path) -> RunnerIdentity | None:
    try:
        data = json.loads(path.read_text())
        return RunnerIdentity(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); run `labci-runner register`") from exc


async def _resolve_identity(settings: Settings) -> RunnerIdentity:
    """runner.json, or a fresh registration; LABCI_RUNNER_TOKEN/SERVER_URL override it."""
    identity = load_identity(identity_path(settings))
    if identity is None:
        if settings.registration_token is None:
            raise ConfigError(
                f"not registered: no {identity_path(settings)}; run `labci-runner register` "
                "or set LABCI_REGISTRATION_TOKEN"
            )
        identity = await register(settings)
    token = settings.runner_token.get_secret_value() if settings.runner_token else None
    return RunnerIdentity(
        settings.server_url or identity.server_url,
        identity.runner_id,
        token or identity.runner_token,
        identity.queue_name,
    )


async def start(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT set it when it is not given)."""
    if settings.executor == "docker":
        raise ConfigError("LABCI_RUNNER_EXECUTOR=docker is not available yet; use process")
    identity = await _resolve_identity(settings)
    stop = stop or _stop_on_signals()
    env = inherited_job_env()
    async with ServerClient(identity.server_url, identity.runner_token) as client:
        runtime = JobRuntime(
            client=client,
            executor=ProcessExecutor(base_env=env, grace_s=settings.kill_grace_s),
            mirrors=MirrorCache(settings.workdir, env=env),
            running=RunningJobs(),
            jobs_dir=settings.workdir / "jobs",
        )
        async with redis_pool(settings, identity.queue_name) as pool:
            worker = build_worker(settings, pool, identity.queue_name, runtime)
            print(f"labci-runner {settings.name}: listening on {identity.queue_name}", flush=True)
            await _serve(settings, worker, runtime, stop)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(
    settings: Settings, worker: Worker, runtime: JobRuntime, stop: asyncio.Event
) -> None:
    worker_task = asyncio.create_task(worker.async_run())
    beat_task = asyncio.create_task(heartbeat_loop(settings, runtime))
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({worker_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Order matters: take no new work, let stopped jobs report, then close arq (which
        # would otherwise cancel them again in the middle of their final report).
        worker.allow_pick_jobs = False
        runtime.running.stop_all("shutdown")
        await runtime.running.wait_idle(SHUTDOWN_REPORT_S)
        await stop_worker(worker)
        for task in (beat_task, stop_task, worker_task):
            task.cancel()
        await asyncio.gather(beat_task, stop_task, worker_task, return_exceptions=True)
    if worker_task.done() and not worker_task.cancelled() and worker_task.exception():
        raise ConfigError(f"the arq worker stopped: {worker_task.exception()}")


async def heartbeat_loop(settings: Settings, runtime: JobRuntime) -> None:
    """Renew the running jobs' leases and stop the ones the server cancelled; never crash."""
    while True:
        try:
            cancel = await runtime.client.heartbeat(
                runtime.running.keys(), slots=settings.slots, labels=settings.labels
            )
        except Exception as exc:  # a lost heartbeat is retried next beat, never fatal
            logger.warning("heartbeat failed: %s", exc)
        else:
            for key in cancel:
                if runtime.running.stop(key, "cancelled"):
                    print(f"job {key[0]} attempt {key[1]}: cancel requested", flush=True)
        await asyncio.sleep(settings.heartbeat_interval_s)
