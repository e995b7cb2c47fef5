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
import json
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx

IDLE_LABEL = "bench-idle"
HEARTBEAT_PATH = "/api/v1/runners/heartbeat"
TIMEOUT_S = 30.0


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
    cpu_s: float = 0.0  # this process's: the load the simulation itself puts on the machine


class Beater:
    """One simulated runner's kept-alive connection, speaking HTTP/1.1 through h11 (what
    uvicorn itself parses with). httpx cost this process about 10 ms of CPU a heartbeat on
    this machine — more than the server spent answering it — and this process stands for
    200 machines elsewhere: its CPU must not be taken from the labci processes measured."""

    def __init__(self, host: str, port: int, token: str, body: bytes) -> None:
        self.host, self.port = host, port
        self.headers = [
            ("host", f"{host}:{port}"),
            ("authorization", f"Bearer {token}"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        self.body = body
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.conn = h11.Connection(h11.CLIENT)

    async def beat(self) -> tuple[int, bytes]:
        """POST the heartbeat; (status, body). Raises OSError or h11.ProtocolError when
        the connection breaks (the server closed a kept-alive one just then)."""
        if self.streams is None or self.conn.our_state is not h11.IDLE:
            await self.close()
            self.streams = await asyncio.open_connection(self.host, self.port)
            self.conn = h11.Connection(h11.CLIENT)
        reader, writer = self.streams
        request = h11.Request(method="POST", target=HEARTBEAT_PATH, headers=self.headers)
        writer.write(
            self.conn.send(request)
            + self.conn.send(h11.Data(data=self.body))
            + self.conn.send(h11.EndOfMessage())
        )
        await writer.drain()
        status, chunks = 0, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionResetError("server closed the connection")
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("server closed the connection")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return status, b"".join(chunks)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def _beat_forever(
    server_url: str, tokens: list[str], interval_s: float, stop: EventType, ready: EventType
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    retried: list[int] = []
    body = json.dumps(
        {
            "running": [],
            "slots": 1,
            "labels": [IDLE_LABEL],
            "capabilities": {"host": True, "container": False, "untrusted": False},
        }
    ).encode()
    url = urlsplit(server_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    async def beat(beater: Beater) -> tuple[int, bytes]:
        async with asyncio.timeout(TIMEOUT_S):
            return await beater.beat()

    async def one_runner(i: int, token: str) -> None:
        beater = Beater(host, port, token, body)
        await asyncio.sleep(interval_s * i / len(tokens))
        next_at = time.monotonic()
        while not stop.is_set():
            start = time.monotonic()
            answer: tuple[int, bytes] | None
            try:
                answer = await beat(beater)
            except (OSError, h11.ProtocolError, TimeoutError):
                # labci-runner retries a transport error (a kept-alive connection the
                # server closed just then); so does this one, once, and counts it.
                retried.append(1)
                await beater.close()
                try:
                    answer = await beat(beater)
                except (OSError, h11.ProtocolError, TimeoutError) as exc:
                    failures.append(repr(exc))
                    await beater.close()
                    answer = None
            if answer is not None and answer[0] == 200:
                latencies.append(time.monotonic() - start)
            elif answer is not None:
                failures.append(f"{answer[0]} {answer[1][:200]!r}")
            next_at += interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await beater.close()

    async with asyncio.TaskGroup() as group:
        for i, token in enumerate(tokens):
            group.create_task(one_runner(i, token))
        ready.set()
    return {
        "latencies": latencies,
        "failures": failures,
        "retried": len(retried),
        "cpu_s": time.process_time(),
    }


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
            cpu_s=result["cpu_s"],
        )
