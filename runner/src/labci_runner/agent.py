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
import shutil
import signal
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import docker
from arq.worker import Worker

from labci_runner.cache import MAX_CACHE_ENTRY_BYTES, RunnerCache
from labci_runner.checkout import MirrorCache
from labci_runner.client import ServerClient
from labci_runner.errors import ConfigError
from labci_runner.executors.choice import ExecutorChoice
from labci_runner.executors.container_config import ContainerDefaults
from labci_runner.executors.docker import DockerExecutor, DockerSettings, remove_leftovers
from labci_runner.executors.engine import DockerEngine
from labci_runner.executors.process import ProcessExecutor
from labci_runner.gpus import RunnerGpus, discover
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
    # Setup problems (GPU driver, Docker's NVIDIA support) are said now, not at job time.
    await asyncio.to_thread(discover_gpus, settings)
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


def build_executor(settings: Settings, env: dict[str, str]) -> ExecutorChoice:
    docker_executor = DockerExecutor(
        DockerEngine(settings.docker_url),
        DockerSettings(
            runner_name=settings.name,
            grace_s=settings.kill_grace_s,
            pull_policy=settings.pull_policy,
            default_image=settings.default_image,
            defaults=ContainerDefaults(
                cpus=settings.job_cpus,
                memory_bytes=settings.job_memory_bytes,
                pids_limit=settings.pids_limit,
                user=settings.container_user,
            ),
        ),
    )
    if settings.executor == "docker":
        return ExecutorChoice(process=None, docker_executor=docker_executor, containers_only=True)
    process = ProcessExecutor(base_env=env, grace_s=settings.kill_grace_s)
    return ExecutorChoice(process=process, docker_executor=docker_executor, containers_only=False)


async def remove_own_leftovers(settings: Settings) -> None:
    """Containers a crashed run of this runner left behind (found by its label) go first."""

    engine = DockerEngine(settings.docker_url)

    def sweep() -> list[str]:
        if not engine.answers():
            return []
        try:
            client = engine.client()
        except (docker.errors.DockerException, OSError):
            return []
        try:
            return remove_leftovers(client, settings.name)
        except (docker.errors.DockerException, OSError):
            return []
        finally:
            client.close()

    removed = await asyncio.to_thread(sweep)
    if removed:
        print(f"labci-runner {settings.name}: removed leftover containers {', '.join(removed)}")


async def start(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT set it when it is not given)."""
    if settings.executor == "docker" and not settings.default_image:
        logger.warning("no LABCI_RUNNER_DEFAULT_IMAGE: only jobs naming container.image run here")
    identity = await _resolve_identity(settings)
    stop = stop or _stop_on_signals()
    env = inherited_job_env()
    await remove_own_leftovers(settings)
    gpus = await asyncio.to_thread(discover_gpus, settings)
    async with ServerClient(identity.server_url, identity.runner_token) as client:
        runtime = JobRuntime(
            client=client,
            executor=build_executor(settings, env),
            mirrors=MirrorCache(settings.workdir, env=env),
            running=RunningJobs(),
            jobs_dir=settings.workdir / "jobs",
            max_log_bytes=settings.max_log_bytes,
            gpus=gpus,
            runner_name=settings.name,
            cache=RunnerCache(
                settings.cache_root,
                max_bytes=settings.cache_max_bytes,
                max_entry_bytes=min(settings.cache_max_bytes, MAX_CACHE_ENTRY_BYTES),
            ),
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


def discover_gpus(settings: Settings) -> RunnerGpus:
    """The runner's GPUs, and what is wrong with its setup, said at start (not at job time)."""
    probe = discover(settings.gpus)
    inventory = probe.inventory()
    problems = list(inventory.problems)
    if inventory.gpus and not nvidia_containers(DockerEngine(settings.docker_url)):
        problems.append(
            "GPUs found, but Docker has no NVIDIA container toolkit: container jobs get no GPU"
        )
    inventory = replace(inventory, problems=tuple(problems))
    models = ", ".join(f"{g.id}: {g.model or 'GPU'}" for g in inventory.gpus) or "none"
    versions = f"driver {inventory.driver_version or '?'}, CUDA {inventory.cuda_version or '?'}"
    print(f"labci-runner {settings.name}: GPUs ({inventory.source}) {models}; {versions}")
    for problem in problems:
        print(f"labci-runner {settings.name}: warning: {problem}")
    return RunnerGpus(probe, inventory)


def nvidia_containers(engine: DockerEngine) -> bool:
    """Whether containers can get GPUs: an `nvidia` runtime or the toolkit's hook."""
    if shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-container-cli"):
        return True
    if not engine.answers():
        return False
    try:
        client = engine.client()
    except (docker.errors.DockerException, OSError):
        return False
    try:
        return "nvidia" in (client.info().get("Runtimes") or {})
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


async def _capabilities(runtime: JobRuntime) -> dict[str, bool] | None:
    executor = runtime.executor
    if isinstance(executor, ExecutorChoice):
        return (await executor.capabilities()).as_json()
    return None


async def heartbeat_loop(settings: Settings, runtime: JobRuntime) -> None:
    """Renew the running jobs' leases and stop the ones the server cancelled; never crash."""
    while True:
        try:
            capabilities = await _capabilities(runtime)
            gpus = None
            if runtime.gpus is not None:
                in_use = runtime.gpus_in_use()
                await runtime.gpus.recheck(in_use)
                gpus = runtime.gpus.heartbeat_json(in_use)
            cancel = await runtime.client.heartbeat(
                runtime.running.keys(),
                slots=settings.slots,
                labels=settings.labels,
                capabilities=capabilities,
                gpus=gpus,
            )
        except Exception as exc:  # a lost heartbeat is retried next beat, never fatal
            logger.warning("heartbeat failed: %s", exc)
        else:
            for key in cancel:
                if runtime.running.stop(key, "cancelled"):
                    print(f"job {key[0]} attempt {key[1]}: cancel requested", flush=True)
        await asyncio.sleep(settings.heartbeat_interval_s)
