"""The runner agent: registration, heartbeats and the arq worker, as one asyncio program.

`register(settings)` trades a single-use registration token for a runner token and a
queue name, stored in `<workdir>/runner.json` (mode 0600). `start(settings)` runs the
heartbeat loop and the arq worker side by side until SIGTERM/SIGINT, then drains: it
takes no new work (heartbeats say it is draining, so nothing more is placed here), lets
the running jobs finish for `LABCI_RUNNER_DRAIN_GRACE_S`, stops the ones still running
and hands them back to the server, which runs them again as new attempts elsewhere (a
handed-back attempt is never reported), and closes its connections.

At start the runner's files are made private (`secure_workdir`): steps must not read its
token, mirrors or cache. With `LABCI_RUNNER_JOB_USER`, host steps run as that user; a
root runner without one says, once, that its steps can read all of it.
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
from urllib.parse import quote, urlsplit, urlunsplit

import docker

from labci_runner import telemetry
from labci_runner.cache import MAX_CACHE_ENTRY_BYTES, RunnerCache
from labci_runner.checkout import MirrorCache
from labci_runner.client import ServerClient
from labci_runner.errors import ConfigError
from labci_runner.executors.choice import ExecutorChoice
from labci_runner.executors.container_config import ContainerDefaults
from labci_runner.executors.docker import DockerExecutor, DockerSettings, remove_leftovers
from labci_runner.executors.engine import DockerEngine
from labci_runner.executors.job_user import (
    JobUser,
    check_can_switch,
    resolve_job_user,
    unreachable_ancestor,
)
from labci_runner.executors.process import ProcessExecutor
from labci_runner.executors.step_ledger import StepLedger
from labci_runner.gpus import RunnerGpus, discover
from labci_runner.jobs import JobRuntime, RunningJobs
from labci_runner.redis_outage import Outage, OutlastingWorker
from labci_runner.settings import Settings, runner_environment
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
    # The runner's own Redis user (LABCI_REDIS_RUNNER_ACL on the server): it replaces the
    # user and password of LABCI_REDIS_URL, whose host and port stay the operator's choice.
    redis_username: str | None = None
    redis_password: str | None = None

    def redis_url(self, configured: str) -> str:
        if self.redis_username is None or self.redis_password is None:
            return configured
        parts = urlsplit(configured)
        host = parts.netloc.rpartition("@")[2]
        user, password = quote(self.redis_username, safe=""), quote(self.redis_password, safe="")
        return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


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
    identity = RunnerIdentity(
        server_url,
        answer.runner_id,
        answer.runner_token,
        answer.queue_name,
        redis_username=answer.redis_username,
        redis_password=answer.redis_password,
    )
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
    return replace(
        identity,
        server_url=settings.server_url or identity.server_url,
        runner_token=token or identity.runner_token,
    )


def job_user_of(settings: Settings) -> JobUser | None:
    """The user host steps run as (None: the runner's own), checked before anything runs."""
    if settings.executor != "process":
        return None  # every job runs in a container, as LABCI_RUNNER_CONTAINER_USER
    if settings.job_user is None:
        if os.geteuid() == 0:
            logger.warning(
                "steps of host jobs run as root and can read the runner's credentials"
                " (runner.json, mirrors, cache): set LABCI_RUNNER_JOB_USER to an unprivileged user"
            )
        return None
    user = resolve_job_user(settings.job_user)
    check_can_switch(user)
    return user


def secure_workdir(settings: Settings, job_user: JobUser | None) -> None:
    """The runner's files private, its jobs directory traversable only (for a job user to
    reach its own job's directory), and that directory reachable by the job user."""
    jobs = settings.workdir / "jobs"
    modes = (
        (settings.workdir, 0o711),
        (jobs, 0o711),
        (settings.workdir / "mirrors", 0o700),
        (settings.cache_root, 0o700),
    )
    try:
        for path, mode in modes:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
        if identity_path(settings).exists():
            identity_path(settings).chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"cannot make the runner's files private: {exc}") from exc
    blocked = unreachable_ancestor(jobs, job_user) if job_user else None
    if job_user and blocked:
        raise ConfigError(
            f"LABCI_RUNNER_WORKDIR: the job user {job_user.name} cannot enter {blocked};"
            " choose a workdir it can reach (e.g. /var/lib/labci-runner)"
        )


def build_executor(
    settings: Settings, env: dict[str, str], job_user: JobUser | None = None
) -> ExecutorChoice:
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
    process = ProcessExecutor(
        base_env=env,
        pass_env=settings.job_env,
        job_user=job_user,
        grace_s=settings.kill_grace_s,
        ledger=step_ledger(settings),
    )
    return ExecutorChoice(process=process, docker_executor=docker_executor, containers_only=False)


def step_ledger(settings: Settings) -> StepLedger:
    return StepLedger(settings.workdir / "steps")


async def remove_own_leftovers(settings: Settings) -> None:
    """What a crashed run of this runner left behind goes first: the process groups of its
    host steps (executors.step_ledger), its containers (found by their label)."""
    if killed := await asyncio.to_thread(step_ledger(settings).kill_leftovers):
        pids = ", ".join(map(str, killed))
        print(
            f"labci-runner {settings.name}: killed the leftover steps' process groups {pids}",
            flush=True,
        )

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
        print(
            f"labci-runner {settings.name}: removed leftover containers {', '.join(removed)}",
            flush=True,
        )


async def start(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT set it when it is not given)."""
    if settings.executor == "docker" and not settings.default_image:
        logger.warning("no LABCI_RUNNER_DEFAULT_IMAGE: only jobs naming container.image run here")
    job_user = job_user_of(settings)
    identity = await _resolve_identity(settings)
    secure_workdir(settings, job_user)
    stop = stop or _stop_on_signals()
    env = runner_environment()
    await remove_own_leftovers(settings)
    gpus = await asyncio.to_thread(discover_gpus, settings)
    telemetry.serve_metrics(settings, gpus)
    async with ServerClient(identity.server_url, identity.runner_token) as client:
        runtime = JobRuntime(
            client=client,
            executor=build_executor(settings, env, job_user),
            mirrors=MirrorCache(settings.workdir, env=env),
            running=RunningJobs(),
            jobs_dir=settings.workdir / "jobs",
            max_log_bytes=settings.max_log_bytes,
            log_uploads_in_flight=settings.log_uploads_in_flight,
            gpus=gpus,
            runner_name=settings.name,
            cache=RunnerCache(
                settings.cache_root,
                max_bytes=settings.cache_max_bytes,
                max_entry_bytes=min(settings.cache_max_bytes, MAX_CACHE_ENTRY_BYTES),
            ),
        )
        redis_settings = settings.model_copy(
            update={"redis_url": identity.redis_url(settings.redis_url)}
        )
        outage = Outage(settings.redis_url)
        async with redis_pool(redis_settings, identity.queue_name, outage) as pool:
            worker = build_worker(settings, pool, identity.queue_name, runtime, outage=outage)
            print(f"labci-runner {settings.name}: listening on {identity.queue_name}", flush=True)
            try:
                await _serve(settings, worker, runtime, stop)
            finally:
                await runtime.mirrors.aclose()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve(
    settings: Settings, worker: OutlastingWorker, runtime: JobRuntime, stop: asyncio.Event
) -> None:
    worker_task = asyncio.create_task(worker.async_run())
    beat_task = asyncio.create_task(heartbeat_loop(settings, runtime))
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({worker_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Order matters: take no new work, let running jobs finish (the heartbeats go on,
        # renewing their leases), hand back the rest once they are stopped, then close arq
        # (which would otherwise cancel them again in the middle of their release).
        worker.allow_pick_jobs = False
        runtime.running.draining = True
        if runtime.running.keys():
            print(f"labci-runner {settings.name}: draining", flush=True)
            await runtime.running.wait_idle(settings.drain_grace_s)
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
    """Renew the running jobs' leases and stop the ones the server cancelled; never crash.

    Beats at a fixed rate, not an interval after each answer: the lease counts from the
    last renewal, and a server slow to answer (a busy start-up, 200 runners beating at
    once) would otherwise push every renewal later by its answer time, eating into the
    lease. A beat that is late already goes at once, without a burst to catch up."""
    clock = asyncio.get_running_loop()
    next_at = clock.time()
    while True:
        try:
            capabilities = await _capabilities(runtime)
            gpus = None
            if runtime.gpus is not None:
                in_use = runtime.gpus_in_use()
                await runtime.gpus.recheck(in_use)
                gpus = await runtime.gpus.heartbeat_now(in_use)
            cancel = await runtime.client.heartbeat(
                runtime.running.keys(),
                slots=settings.slots,
                labels=settings.labels,
                capabilities=capabilities,
                gpus=gpus,
                resources={"cpus": settings.cpus, "memory_bytes": settings.memory_bytes},
                draining=runtime.running.draining,
            )
        except Exception as exc:  # a lost heartbeat is retried next beat, never fatal
            logger.warning("heartbeat failed: %s", exc)
        else:
            telemetry.heartbeat_done(settings)
            for key in cancel:
                if runtime.running.stop(key, "cancelled"):
                    print(f"job {key[0]} attempt {key[1]}: cancel requested", flush=True)
        next_at = max(next_at + settings.heartbeat_interval_s, clock.time())
        await asyncio.sleep(next_at - clock.time())
