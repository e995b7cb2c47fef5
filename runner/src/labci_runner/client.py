"""HTTP client for the runner ⇄ server protocol (docs/runner-protocol.md).

`ServerClient` speaks with the runner token (register, heartbeat, fetch_job);
`AttemptChannel` speaks for one job attempt with its short-lived job token (start, logs,
step, complete) and redacts the attempt's secrets from every body and artifact path it
sends (`labci_runner.redact`). Transport errors and 5xx are retried with bounded
exponential backoff; 4xx are not: 409 → `StaleAttempt`; 401 → `Unauthorized` for the
runner token, but `StaleAttempt` for a job token (the server revokes it when the attempt
ends); others (403 included) → `ServerRejected`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import version
from typing import Any
from urllib.parse import quote

import httpx

from labci_runner.errors import ServerRejected, ServerUnavailable, StaleAttempt, Unauthorized
from labci_runner.redact import Redactor

logger = logging.getLogger(__name__)

# Sent with each heartbeat: the runners page shows which runner runs which version.
RUNNER_VERSION = version("labci-runner")
MAX_TRIES = 6
# A job's end is worth waiting for: its report is retried for about as long as the server's
# lease (30 s by default) can outlast the heartbeats that fail meanwhile (≈36 s of tries),
# so a server restart costs a finished job neither its result nor a re-run.
COMPLETE_TRIES = 12
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Registration:
    """What `register` returns, stored in runner.json."""

    runner_id: int
    runner_token: str
    queue_name: str
    # The runner's own Redis user, when the server makes one (LABCI_REDIS_RUNNER_ACL).
    redis_username: str | None = None
    redis_password: str | None = None


@dataclass(frozen=True)
class Assignment:
    """A fetched job attempt; `job` is the raw `labci_spec.JobInstance` JSON.

    `secrets` holds the values of the secrets the job's workflow references (none for an
    untrusted job); steps render them, and everything sent about the attempt is redacted.
    """

    job_id: int
    attempt: int
    job_token: str
    clone_url: str
    commit_sha: str
    ref: str | None
    workflow_name: str | None
    job: dict[str, Any]
    env: dict[str, str]
    timeout_s: float | None
    gpu_ids: tuple[str, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # False for a fork's code: only a runner whose every job runs in a container runs it.
    trusted: bool = True

    @cached_property
    def redactor(self) -> Redactor:
        return Redactor(self.secrets.values())

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Assignment:
        return cls(
            job_id=int(body["job_id"]),
            attempt=int(body["attempt"]),
            job_token=str(body["job_token"]),
            clone_url=str(body["clone_url"]),
            commit_sha=str(body["commit_sha"]),
            ref=body.get("ref"),
            workflow_name=body.get("workflow_name"),
            job=dict(body["job"]),
            env={str(k): str(v) for k, v in (body.get("env") or {}).items()},
            timeout_s=body.get("timeout_s"),
            gpu_ids=tuple(str(g) for g in body.get("gpu_ids") or ()),
            secrets={str(k): str(v) for k, v in (body.get("secrets") or {}).items()},
            trusted=body.get("trusted") is not False,
        )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


def _raise_for_status(response: httpx.Response, *, job_token: bool = False) -> None:
    """Map a 4xx; with a job token, 401 means the attempt ended (its token was revoked)."""
    status = response.status_code
    if status < 400:
        return
    if status == 409 or (status == 401 and job_token):
        raise StaleAttempt(status, _detail(response))
    if status == 401:
        raise Unauthorized(status, _detail(response))
    raise ServerRejected(status, _detail(response))


async def send_with_retries(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    job_token: bool = False,
    tries: int | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; retry transport errors and 5xx with exponential backoff (`tries`
    in all, MAX_TRIES unless given)."""
    tries = tries or MAX_TRIES
    delay_s = BACKOFF_FIRST_S
    problem = ""
    for try_no in range(1, tries + 1):
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500:
                _raise_for_status(response, job_token=job_token)
                return response
            problem = f"{response.status_code} {_detail(response)}"
        if try_no < tries:
            logger.warning(
                "%s %s failed (%s), retry %d in %.1fs", method, url, problem, try_no, delay_s
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, BACKOFF_MAX_S)
    raise ServerUnavailable(f"{method} {url}: {problem} (after {tries} tries)")


class ServerClient:
    """The runner's long-lived HTTP client; use as an async context manager."""

    def __init__(
        self,
        server_url: str,
        runner_token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.runner_token = runner_token
        self.http = httpx.AsyncClient(
            base_url=server_url.rstrip("/"), timeout=REQUEST_TIMEOUT_S, transport=transport
        )

    async def __aenter__(self) -> ServerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.runner_token}"}

    async def register(
        self, registration_token: str, *, name: str, labels: list[str], slots: int
    ) -> Registration:
        body = {
            "registration_token": registration_token,
            "name": name,
            "labels": labels,
            "slots": slots,
        }
        response = await send_with_retries(self.http, "POST", "/api/v1/runners/register", json=body)
        data = response.json()
        return Registration(
            int(data["runner_id"]),
            str(data["runner_token"]),
            data["queue_name"],
            redis_username=data.get("redis_username"),
            redis_password=data.get("redis_password"),
        )

    async def heartbeat(
        self,
        running: list[tuple[int, int]],
        *,
        slots: int,
        labels: list[str],
        capabilities: dict[str, bool] | None = None,
        gpus: dict[str, Any] | None = None,
        resources: dict[str, Any] | None = None,
        draining: bool = False,
    ) -> list[tuple[int, int]]:
        """Renew the leases of `running`; return the (job_id, attempt) pairs to cancel.
        `draining`: this runner is stopping and must be given no new job."""
        body: dict[str, object] = {
            "running": [{"job_id": j, "attempt": a} for j, a in running],
            "slots": slots,
            "labels": labels,
            "version": RUNNER_VERSION,
        }
        if capabilities is not None:
            body["capabilities"] = capabilities
        if gpus is not None:
            body["gpus"] = gpus
        if resources is not None:
            body["resources"] = resources
        if draining:
            body["draining"] = True
        response = await send_with_retries(
            self.http, "POST", "/api/v1/runners/heartbeat", json=body, headers=self._auth()
        )
        cancel = response.json().get("cancel") or []
        return [(int(c["job_id"]), int(c["attempt"])) for c in cancel]

    async def fetch_job(self, job_id: int, attempt: int) -> Assignment:
        response = await send_with_retries(
            self.http,
            "GET",
            f"/api/v1/runner/jobs/{job_id}",
            params={"attempt": attempt},
            headers=self._auth(),
        )
        return Assignment.from_json(response.json())

    def channel(self, assignment: Assignment) -> AttemptChannel:
        return AttemptChannel(
            self.http,
            assignment.job_id,
            assignment.attempt,
            assignment.job_token,
            redactor=assignment.redactor,
        )


class AttemptChannel:
    """Reports of one job attempt, authorised by its job token; `StaleAttempt` means stop.

    Every body (each string and each dict key under the protocol's own fields: log texts
    of every stream, reasons, metric names, the record) and every artifact path is
    redacted before it is sent.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        job_id: int,
        attempt: int,
        job_token: str,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        self.http = http
        self.job_id = job_id
        self.attempt = attempt
        self.redactor = redactor or Redactor()
        self._headers = {"Authorization": f"Bearer {job_token}"}

    async def _post(self, suffix: str, body: dict[str, Any], *, tries: int | None = None) -> None:
        url = f"/api/v1/runner/jobs/{self.job_id}{suffix}"
        # The protocol's own field names stay; everything under them is redacted.
        redacted = {name: self.redactor.redact_json(value) for name, value in body.items()}
        payload = {"attempt": self.attempt, **redacted}
        await send_with_retries(
            self.http,
            "POST",
            url,
            job_token=True,
            tries=tries,
            json=payload,
            headers=self._headers,
        )

    async def start(self) -> None:
        await self._post("/start", {})

    async def upload_artifact(
        self, path: str, chunks: Callable[[], AsyncIterator[bytes]]
    ) -> dict[str, Any]:
        """Stream one artifact; `chunks` makes a fresh stream for each try.

        The path is redacted; the file's bytes are not (artifacts are the experiment's
        output, kept as written).
        """
        url = f"/api/v1/runner/jobs/{self.job_id}/artifacts/{quote(self.redactor.redact(path))}"
        delay_s = BACKOFF_FIRST_S
        for try_no in range(1, MAX_TRIES + 1):
            try:
                response = await self.http.put(
                    url, params={"attempt": self.attempt}, content=chunks(), headers=self._headers
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    _raise_for_status(response, job_token=True)
                    result: dict[str, Any] = response.json()
                    return result
                problem = f"{response.status_code} {_detail(response)}"
            if try_no < MAX_TRIES:
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, BACKOFF_MAX_S)
        raise ServerUnavailable(f"PUT {url}: {problem} (after {MAX_TRIES} tries)")

    async def release(self, reason: str) -> None:
        """This attempt cannot run here (an assigned GPU is not fit, or the runner is
        stopping): the server runs it again as a new attempt."""
        await self._post("/release", {"reason": self.redactor.redact(reason)[:500]})

    async def logs(self, lines: list[dict[str, Any]]) -> None:
        await self._post("/logs", {"lines": lines})

    async def step(
        self,
        index: int,
        *,
        status: str,
        exit_code: int | None = None,
        started_at: float | None = None,
        finished_at: float | None = None,
    ) -> None:
        body = {
            "status": status,
            "exit_code": exit_code,
            "started_at": started_at,
            "finished_at": finished_at,
        }
        await self._post(f"/steps/{index}", body)

    async def complete(
        self,
        outcome: str,
        *,
        reason: str | None = None,
        metrics: dict[str, float] | None = None,
        metrics_error: str | None = None,
        record: dict[str, Any] | None = None,
    ) -> None:
        body = {
            "outcome": outcome,
            "reason": reason,
            "metrics": metrics,
            "metrics_error": metrics_error,
            "record": record,
        }
        await self._post("/complete", body, tries=COMPLETE_TRIES)
