"""Simulated runners for the benchmarks: registered over the real API, then heartbeating at
a runner's interval from a process of their own, with labels no benchmark job asks for —
they add only the heartbeat load of a large fleet.

`register_fleet` makes the registration tokens in-process (what `labci runners token`
does) and registers each runner with `POST /api/v1/runners/register`; `IdleFleet` sends
`POST /api/v1/runners/heartbeat` for each, spread evenly over the interval, and reports
the answers' latency and any that were not 200.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any

import httpx

IDLE_LABEL = "bench-idle"


async def register_fleet(
    server_url: str, database_url: str, redis_url: str, count: int
) -> list[str]:
    """`count` runners labelled IDLE_LABEL; their runner tokens."""
    # Imported here: the heartbeating child process needs none of the server.
    from helpers.server import server_context, test_settings
    from labci_server.scheduling.runners import create_registration_token

    async with server_context(test_settings(database_url, redis_url)) as sc:
        registrations = [await create_registration_token(sc) for _ in range(count)]
    tokens = []
    async with httpx.AsyncClient(base_url=server_url, timeout=30) as client:
        for i, registration in enumerate(registrations):
            answer = await client.post(
                "/api/v1/runners/register",
                json={"registration_token": registration, "name": f"idle-{i}",
                      "labels": [IDLE_LABEL], "slots": 1},
            )  # fmt: skip
            if answer.status_code != 200:
                raise SystemExit(f"registering idle runner {i}: {answer.status_code} {answer.text}")
            tokens.append(answer.json()["runner_token"])
    return tokens


@dataclass
class FleetReport:
    beats: int
    failures: int
    retried: int
    latencies_s: list[float]
    first_failure: str | None


async def _beat_forever(
    server_url: str, tokens: list[str], interval_s: float, stop: EventType, ready: EventType
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    retried: list[int] = []
    body = {
        "running": [],
        "slots": 1,
        "labels": [IDLE_LABEL],
        "capabilities": {"host": True, "container": False, "untrusted": False},
    }
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server_url, timeout=30, limits=limits) as client:

        async def beat(token: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"}
            return await client.post("/api/v1/runners/heartbeat", json=body, headers=headers)

        async def one_runner(i: int, token: str) -> None:
            await asyncio.sleep(interval_s * i / len(tokens))
            next_at = time.monotonic()
            while not stop.is_set():
                start = time.monotonic()
                try:
                    answer = await beat(token)
                except httpx.TransportError:
                    # labci-runner retries a transport error (a kept-alive connection the
                    # server closed just then); so does this one, once, and counts it.
                    retried.append(1)
                    try:
                        answer = await beat(token)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        answer = None
                if answer is not None and answer.status_code == 200:
                    latencies.append(time.monotonic() - start)
                elif answer is not None:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        async with asyncio.TaskGroup() as group:
            for i, token in enumerate(tokens):
                group.create_task(one_runner(i, token))
            ready.set()
    return {"latencies": latencies, "failures": failures, "retried": len(retried)}


def _child(
    server_url: str, tokens: list[str], interval_s: float, events: tuple[EventType, EventType], out
) -> None:
    result = asyncio.run(_beat_forever(server_url, tokens, interval_s, *events))
    out.put(result)


class IdleFleet:
    """`with IdleFleet(url, tokens, interval_s) as fleet:` heartbeats until the block ends;
    then `fleet.report` says how it went."""

    def __init__(self, server_url: str, tokens: list[str], interval_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop, self._ready = ctx.Event(), ctx.Event()
        self._out = ctx.Queue()
        self._proc = ctx.Process(
            target=_child,
            args=(server_url, tokens, interval_s, (self._stop, self._ready), self._out),
        )
        self.report: FleetReport | None = None

    def __enter__(self) -> IdleFleet:
        self._proc.start()
        if not self._ready.wait(timeout=120):
            raise RuntimeError("the idle fleet's process did not start heartbeating")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        result = self._out.get(timeout=120)
        self._proc.join(timeout=30)
        failures = result["failures"]
        self.report = FleetReport(
            beats=len(result["latencies"]) + len(failures),
            failures=len(failures),
            retried=result["retried"],
            latencies_s=result["latencies"],
            first_failure=failures[0] if failures else None,
        )
