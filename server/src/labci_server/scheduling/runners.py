"""Runner registration, heartbeats (which renew job leases) and handing out jobs."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from ..context import ServerContext
from ..db.models import TERMINAL_JOB_STATES, Job, RegistrationToken, Runner
from ..db.queries import jobs as job_queries
from ..db.queries.events import get_event
from ..db.queries.repositories import get_repository
from ..db.queries.runners import (
    registration_token_by_hash,
    runner_by_token_hash,
    runners_named,
)
from ..db.queries.runs import get_run
from ..errors import Conflict, Forbidden, NotFound, Unauthorized
from ..queue import kick_scheduler
from ..secrets import secrets_for_job
from ..settings import Settings
from ..tokens import (
    JOB_TOKEN_PREFIX,
    REGISTRATION_TOKEN_PREFIX,
    RUNNER_TOKEN_PREFIX,
    hash_token,
    new_token,
)
from .retry import back_to_pending
from .runner_acl import create_runner_user, drop_runner_users

RUNNER_QUEUE_PREFIX = "labci:runner:"


# labci-runner takes a prefetch hint with its job message (queue.enqueue_run_job) from
# this version on; an older one would fail the job on the argument it does not know.
PREFETCH_SINCE = (0, 2)


def takes_prefetch(runner: Runner) -> bool:
    """Whether the runner's last heartbeat named a version that takes a prefetch hint."""
    numbers = []
    for part in (runner.version or "").split(".")[:2]:
        if not part.isdigit():
            return False
        numbers.append(int(part))
    return tuple(numbers) >= PREFETCH_SINCE


async def create_registration_token(sc: ServerContext) -> str:
    token = new_token(REGISTRATION_TOKEN_PREFIX)
    async with sc.sessions() as session, session.begin():
        session.add(
            RegistrationToken(
                token_hash=hash_token(token),
                expires_at=time.time() + sc.settings.registration_token_ttl_s,
            )
        )
    return token


async def register_runner(
    sc: ServerContext, *, registration_token: str, name: str, labels: list[str], slots: int
) -> dict[str, Any]:
    runner_token = new_token(RUNNER_TOKEN_PREFIX)
    async with sc.sessions() as session, session.begin():
        reg = await registration_token_by_hash(session, hash_token(registration_token))
        if reg is None or reg.used_at is not None or reg.expires_at < time.time():
            raise Unauthorized("registration token is unknown, used or expired")
        reg.used_at = time.time()
        runner = Runner(
            name=name, labels=labels, slots=max(1, slots), token_hash=hash_token(runner_token)
        )
        session.add_all([reg, runner])
        await session.flush()
        runner.queue_name = f"{RUNNER_QUEUE_PREFIX}{runner.id}"
        session.add(runner)
        answer: dict[str, Any] = {
            "runner_id": runner.id,
            "runner_token": runner_token,
            "queue_name": runner.queue_name,
        }
        if sc.settings.redis_runner_acl:
            # Before the commit: if Redis refuses, the registration token stays unused.
            credentials = await create_runner_user(sc.redis, runner.queue_name)
            answer["redis_username"] = credentials.username
            answer["redis_password"] = credentials.password
    return answer


async def authenticate_runner(session: AsyncSession, token: str | None) -> Runner:
    runner = await runner_by_token_hash(session, hash_token(token)) if token else None
    if runner is None or runner.revoked_at is not None:
        raise Unauthorized("unknown or revoked runner token")
    return runner


async def revoke_runner(
    sessions: Any, name: str, *, redis: Redis | None = None, remove: bool = False
) -> int:
    """Revoke every runner called `name` (`labci runners revoke`): their tokens answer 401
    from now on, and their queued jobs go back to the scheduler when their heartbeats stop.
    With `redis` (LABCI_REDIS_RUNNER_ACL), their Redis users go too. `remove` (`labci
    runners remove`) also takes them off the list; jobs only they could take then fail at
    the next scheduling pass, with the reason."""
    async with sessions() as session, session.begin():
        found = [r for r in await runners_named(session, name) if r.removed_at is None]
        if not found:
            raise NotFound(f"no runner named {name!r}")
        for runner in found:
            if runner.revoked_at is None:
                runner.revoked_at = time.time()
                runner.last_heartbeat_at = None  # offline at once: nothing new is placed on it
            if remove:
                runner.removed_at = time.time()
            session.add(runner)
    if redis is not None:
        await drop_runner_users(redis, [runner.queue_name for runner in found])
    return len(found)


async def drain_runner(sessions: Any, name: str, *, drain: bool, by: str) -> tuple[int, int]:
    """Drain (`drain`) or resume every runner called `name` (`labci runners drain|resume`,
    the runners page): a drained runner finishes the jobs it has started and gets no new
    one. Jobs queued on it that it has not fetched yet go back to pending for another
    runner (a new attempt: its fetch of the old one is refused). Returns (runners, jobs
    handed back)."""
    released = 0
    async with sessions() as session, session.begin():
        found = [r for r in await runners_named(session, name) if r.revoked_at is None]
        if not found:
            raise NotFound(f"no active runner named {name!r}")
        for runner in found:
            runner.drained_at = time.time() if drain else None
            runner.drained_by = by if drain else None
            session.add(runner)
            if not drain:
                continue
            for held in await job_queries.active_jobs(session, runner_id=runner.id):
                job = await job_queries.get_job(session, held.id or 0, for_update=True)
                if job is None or job.state != "queued" or job.job_token_hash is not None:
                    continue  # started, or being fetched: it finishes here
                back_to_pending(session, job, reason=f"runner {name} was drained by {by}")
                released += 1
    return len(found), released


async def heartbeat(
    sc: ServerContext,
    *,
    token: str | None,
    running: list[tuple[int, int]],
    slots: int,
    labels: list[str],
    capabilities: dict[str, bool] | None = None,
    gpus: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    draining: bool = False,
    version: str | None = None,
) -> dict[str, Any]:
    """Renew the leases of the jobs the runner runs; the ones to stop are returned. A
    draining runner (stopping) is offline for the scheduler from its first such beat."""
    now = time.time()
    cancel = []
    async with sc.sessions() as session, session.begin():
        runner = await authenticate_runner(session, token)
        before = _placement_facts(runner, now, sc.settings.lease_s)
        # Only what changed is written: an assignment marks a JSON column dirty even when
        # equal, and 200 idle runners' beats (100 a second) would rewrite and re-serialise
        # every GPU inventory each time, where the row's heartbeat time is all that moved.
        reported = {
            "slots": max(1, slots),
            "labels": labels or runner.labels,
            "capabilities": capabilities,
            "gpus": gpus,
            "version": version,
            "resources": resources,
        }
        for name, value in reported.items():
            if value is not None and getattr(runner, name) != value:
                setattr(runner, name, value)
        runner.last_heartbeat_at = None if draining else now
        # A pass is asked for only when the runner has news for the scheduler (it came
        # online, or changed what it can take): jobs finishing kick one already, and an
        # idle fleet's heartbeats must not keep the scheduler busy.
        changed = _placement_facts(runner, now, sc.settings.lease_s) != before
        session.add(runner)
        for job_id, attempt in sorted(running):
            # Never wait for a job's lock here: a completion holding it (run, then job,
            # then fail-fast siblings) may be waiting for a row this heartbeat holds.
            # FOR NO KEY UPDATE: a log upload's foreign-key check (FOR KEY SHARE) does not
            # hold it off, so a job printing without pause still has its lease renewed.
            job = await job_queries.get_job(
                session, job_id, for_update=True, skip_locked=True, key_share=True
            )
            if job is None and await job_queries.get_job(session, job_id) is not None:
                continue  # being finished right now; the next heartbeat sees the outcome
            if job is not None and _reported_by(job, runner, attempt):
                continue  # its own final report ended it: the runner is finishing, not late
            if (
                job is None
                or job.runner_id != runner.id
                or job.attempt != attempt
                or job.state not in ("queued", "running")
            ):
                cancel.append({"job_id": job_id, "attempt": attempt})
                continue
            job.lease_expires_at = now + sc.settings.lease_s
            session.add(job)
        has_pending = changed and bool(await job_queries.pending_jobs(session, limit=1))
    if has_pending and len(running) < slots and not draining and runner.drained_at is None:
        await kick_scheduler(sc.redis)
    return {"cancel": cancel, "lease_s": sc.settings.lease_s}


def _placement_facts(runner: Runner, now: float, lease_s: float) -> tuple[Any, ...]:
    """What the scheduler reads of a runner: online or not, and what it can take."""
    online = runner.last_heartbeat_at is not None and runner.last_heartbeat_at > now - lease_s
    gpus = [
        (g.get("id"), g.get("healthy", True), g.get("memory_mib"))
        for g in (runner.gpus or {}).get("gpus") or []
        if isinstance(g, dict)
    ]
    return (
        online,
        runner.slots,
        list(runner.labels),
        dict(runner.capabilities or {}),
        gpus,
        dict(runner.resources or {}),
    )


def _reported_by(job: Job, runner: Runner, attempt: int) -> bool:
    """Whether `runner`'s own final report for `attempt` ended the job (it stored the
    record); a job the server ended (cancelled, reaped) has no record of that attempt."""
    return (
        job.runner_id == runner.id
        and job.attempt == attempt
        and job.state in TERMINAL_JOB_STATES
        and job.state != "cancelled"
        and job.record is not None
    )


async def fetch_job(
    sc: ServerContext, *, token: str | None, job_id: int, attempt: int
) -> dict[str, Any]:
    """The runner claims the attempt it was assigned: the attempt's job token is minted
    now, once. Fetching it again mints nothing (409): whoever holds the runner token —
    a step that read it, a copied `runner.json` — cannot get a token for a job in flight
    and report in its place. A lost answer costs the attempt (its lease runs out and it is
    retried as a new one), never a second token."""
    job_token = new_token(JOB_TOKEN_PREFIX)
    async with sc.sessions() as session, session.begin():
        runner = await authenticate_runner(session, token)
        job = await job_queries.get_job(session, job_id, for_update=True)
        if job is None:
            raise NotFound(f"job {job_id} does not exist")
        if job.runner_id != runner.id:
            raise Forbidden(f"job {job_id} is not assigned to this runner")
        if job.attempt != attempt or job.state not in ("queued", "running"):
            raise Conflict(f"job {job_id} attempt {attempt} is stale")
        if job.job_token_hash is not None:
            raise Conflict(
                f"job {job_id} attempt {attempt} was fetched already; its token is handed out once"
            )
        job.job_token_hash = hash_token(job_token)
        job.lease_expires_at = time.time() + sc.settings.lease_s
        session.add(job)
        payload = await _job_payload(sc, session, job)
    return {**payload, "job_token": job_token}


async def _job_payload(sc: ServerContext, session: AsyncSession, job: Job) -> dict[str, Any]:
    run = await get_run(session, job.run_id)
    event = await get_event(session, run.event_id) if run else None
    repo = await get_repository(session, run.repository_id) if run else None
    if run is None or event is None or repo is None:
        raise NotFound(f"job {job.id} has no run")
    env = {
        "LABCI_JOB_ID": str(job.id),
        "LABCI_ATTEMPT": str(job.attempt),
        "LABCI_RUN_ID": str(run.id),
        "LABCI_REPOSITORY": repo.full_name,
        "LABCI_COMMIT_SHA": run.commit_sha,
        "LABCI_EVENT": run.trigger,
        "LABCI_BRANCH": run.branch,
        "LABCI_WORKFLOW": run.workflow_name,
    }
    if event.base_branch:
        env["LABCI_BASE_BRANCH"] = event.base_branch
    if run.pr_number is not None:
        env["LABCI_PR_NUMBER"] = str(run.pr_number)
    return {
        "job_id": job.id,
        "attempt": job.attempt,
        "clone_url": repo.clone_url,
        "commit_sha": run.commit_sha,
        "ref": run.branch,
        "workflow_name": run.workflow_name,
        "job": job.spec,
        "env": env,
        "timeout_s": job.timeout_s,
        "gpu_ids": list(job.gpu_ids or []),
        # False for a fork's code: the runner refuses it unless every job runs in a container.
        "trusted": run.trusted,
        # Only what the job references, decrypted; {} for a fork's code (the runner redacts).
        "secrets": await secrets_for_job(sc, session, run, job),
    }


async def revoke_runner_with_acl(
    settings: Settings, sessions: Any, name: str, *, remove: bool = False
) -> int:
    """`revoke_runner`, dropping the runners' Redis users when the server makes them."""
    if not (settings.redis_runner_acl and settings.redis_url):
        return await revoke_runner(sessions, name, remove=remove)
    redis = Redis.from_url(settings.redis_url)
    try:
        return await revoke_runner(sessions, name, redis=redis, remove=remove)
    finally:
        await redis.aclose()
