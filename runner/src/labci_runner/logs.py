"""Batching of a job attempt's log lines towards the server.

`LogSink` numbers every line with a `seq` contiguous from 0 for the attempt, queues it
(bounded, so a chatty step is slowed down by backpressure instead of eating memory) and
sends batches through an async `send(lines)` callable — `AttemptChannel.logs` in the
agent, anything in tests. A batch leaves when it has waited `flush_interval_s`, or holds
`max_batch_lines` lines or `max_batch_bytes` of text; closing the sink sends the rest.

No line is lost: a batch whose `send` fails (the server unreachable or answering 5xx past
`send`'s own retries) is sent again, every `retry_interval_s`, until it is stored; the
queue stays bounded meanwhile, so the step waits (backpressure) rather than the runner
filling its memory. Closing the sink waits for every queued line, however long that
takes. Only two things end sending: a `StaleAttempt` (the attempt moved on: its lines
are not wanted any more; the job notices on its next report), and a 4xx refusal of a
batch, which retrying cannot fix: that batch is replaced by one `system` line saying
which lines were refused and why, so a gap is never silent.

Memory stays bounded whatever a step prints: the queue holds at most `max_queued_bytes`
of text (a writer waits for room), and an attempt keeps at most `max_bytes` of step
output: past it, one `system` line says the log was truncated and later stdout/stderr
lines are dropped (still read, so the step never blocks on a full pipe). `system` lines
are always kept, so a timeout or a failure is still explained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Literal

from labci_runner.errors import LabciRunnerError, ServerRejected, StaleAttempt

logger = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr", "system"]
SendLines = Callable[[list[dict[str, Any]]], Awaitable[None]]


class LogSink:
    """Async context manager: `async with LogSink(send) as sink: await sink.write(...)`.

    Lines wait in a deque that the sender empties a batch at a time: per line, a write costs
    a dict and an append (a step printing a million lines is read at full speed).
    """

    def __init__(
        self,
        send: SendLines,
        *,
        flush_interval_s: float = 0.2,
        max_batch_lines: int = 2000,
        max_batch_bytes: int = 512 * 1024,
        retry_interval_s: float = 5.0,
        max_queued_lines: int = 10_000,
        max_queued_bytes: int = 8 * 1024 * 1024,
        max_bytes: int | None = None,
        max_in_flight: int = 2,
    ) -> None:
        self._send = send
        # Two batches in flight: the server stores one while the next is encoded and sent,
        # so a step that prints without pause is stored ~1.6x faster than one at a time
        # (bench/bench_logs.py). Order does not matter on the wire: every line has its seq.
        self.max_in_flight = max_in_flight
        self.flush_interval_s = flush_interval_s
        self.max_batch_lines = max_batch_lines
        self.max_batch_bytes = max_batch_bytes
        self.retry_interval_s = retry_interval_s
        self.max_queued_lines = max_queued_lines
        self.max_queued_bytes = max_queued_bytes
        self.max_bytes = max_bytes
        self._queue: deque[dict[str, Any]] = deque()
        self._queued_bytes = 0
        self._room = asyncio.Event()  # set while writers may add lines
        self._room.set()
        self._ready = asyncio.Event()  # set when a line is queued, or on close
        self._full = asyncio.Event()  # set when a whole batch is queued, or on close
        self._closing = False
        self._next_seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._stale = False
        self._failing = False  # the last try of a delivery failed; it is being retried
        self.dropped_lines = 0
        self.refused_lines = 0
        self.output_bytes = 0
        self.truncated_lines = 0
        # Progress, for whoever waits for a step's output to be forwarded (`forwarded`).
        self.lines_written = 0
        self.writers_waiting = 0

    @property
    def queued_bytes(self) -> int:
        """Text waiting to be sent; writers wait while it is over `max_queued_bytes`."""
        return self._queued_bytes

    async def __aenter__(self) -> LogSink:
        self._sender = asyncio.create_task(self._send_batches())
        # However the sender ends, writers waiting for room must wake up (and drop).
        self._sender.add_done_callback(lambda _task: self._room.set())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def write(self, step: int, stream: Stream, text: str) -> None:
        """Queue one line; waits while the queue is full (backpressure on the step)."""
        self.lines_written += 1
        if stream != "system" and self.max_bytes is not None:
            self.output_bytes += len(text.encode("utf-8", "replace"))
            if self.output_bytes > self.max_bytes:
                self.truncated_lines += 1
                if self.truncated_lines == 1:  # the first line over the cap: say so, once
                    await self._enqueue(
                        step,
                        "system",
                        f"log truncated: the steps wrote more than {self.max_bytes} bytes;"
                        " later output was read and discarded",
                    )
                return
        await self._enqueue(step, stream, text)

    def _dead(self) -> bool:
        return self._stale or (self._sender is not None and self._sender.done())

    async def _enqueue(self, step: int, stream: Stream, text: str) -> None:
        while self._queued_bytes > self.max_queued_bytes or (
            len(self._queue) >= self.max_queued_lines
        ):
            if self._dead():
                break
            self._room.clear()
            self.writers_waiting += 1
            try:
                await self._room.wait()
            finally:
                self.writers_waiting -= 1
        if self._dead():
            # Nobody would ever take the line off a full queue: drop instead of blocking.
            self.dropped_lines += 1
            return
        line = {"seq": self._next_seq, "step": step, "stream": stream, "text": text}
        line["ts"] = time.time()
        self._next_seq += 1
        self._queued_bytes += len(text)
        self._queue.append(line)
        self._ready.set()
        if len(self._queue) >= self.max_batch_lines or self._queued_bytes >= self.max_batch_bytes:
            self._full.set()

    async def close(self) -> None:
        """Send everything queued so far, then stop the sender task."""
        if self._sender is None:
            return
        sender, self._sender = self._sender, None
        self._closing = True
        self._ready.set()
        self._full.set()
        # Shielded: the final flush goes on even when the job's task is being cancelled.
        await asyncio.shield(sender)

    async def _send_batches(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        break
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                if not self._closing and not self._full.is_set():
                    # A first line is here: more may follow within the flush interval.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.flush_interval_s)
                # While the server fails, one batch at a time: it retries, the rest wait.
                if len(in_flight) >= (1 if self._failing else self.max_in_flight):
                    in_flight = await _settle(in_flight, asyncio.FIRST_COMPLETED)
                    continue  # the queue may have been emptied meanwhile (a 409)
                in_flight.add(asyncio.create_task(self._deliver(self._take_batch())))
            await _settle(in_flight, asyncio.ALL_COMPLETED)
        finally:
            for task in in_flight:
                task.cancel()

    def _take_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        size = 0
        while self._queue and len(batch) < self.max_batch_lines and size < self.max_batch_bytes:
            line = self._queue.popleft()
            batch.append(line)
            size += len(line["text"])
        self._queued_bytes -= size
        if not self._closing and (
            len(self._queue) < self.max_batch_lines and self._queued_bytes < self.max_batch_bytes
        ):
            self._full.clear()
        if self._queued_bytes <= self.max_queued_bytes and len(self._queue) < self.max_queued_lines:
            self._room.set()
        return batch

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        lines = batch
        while not self._stale:
            try:
                await self._send(lines)
                self._failing = False
                return
            except StaleAttempt:
                self._stale = True
                self._drain()
            except ServerRejected as exc:
                if len(lines) == 1 and lines[0]["stream"] == "system":
                    self.refused_lines += 1
                    logger.warning("the server refused a log marker: %s", exc)
                    return
                self.refused_lines += len(lines)
                lines = [_refusal(batch, exc)]
            except LabciRunnerError as exc:
                self._failing = True
                logger.warning(
                    "%d log lines not delivered yet (%s); again in %.0fs",
                    len(lines),
                    exc,
                    self.retry_interval_s,
                )
                await asyncio.sleep(self.retry_interval_s)

    def _drain(self) -> None:
        """Empty the queue after a 409 so writers never block on a dead attempt."""
        self._queue.clear()
        self._queued_bytes = 0
        self._room.set()


async def _settle(tasks: set[asyncio.Task[None]], when: str) -> set[asyncio.Task[None]]:
    """Wait for some or all of `tasks`; re-raise a failure; the ones still running."""
    if not tasks:
        return tasks
    done, pending = await asyncio.wait(tasks, return_when=when)
    for task in done:
        task.result()
    return pending


def _refusal(batch: list[dict[str, Any]], exc: ServerRejected) -> dict[str, Any]:
    """The one `system` line sent in place of a batch the server refused."""
    first, last = batch[0], batch[-1]
    text = f"log lines {first['seq']}-{last['seq']} were refused: the {exc}"
    return {**first, "stream": "system", "text": text[:1000], "ts": time.time()}


async def forwarded(
    tasks: Collection[asyncio.Future[None]], sink: LogSink, *, idle_s: float
) -> set[asyncio.Future[None]]:
    """Wait until `tasks` (a step's output pumps) end; the ones still pending, if any.

    A pump that keeps writing lines, or waits for room in `sink` (the upload is slower than
    the step), is waited for as long as that takes: nothing a step printed is dropped. One
    whose input has been silent for `idle_s` is given up on: after the step's processes are
    killed, only a daemon that escaped them can still hold its pipe open.
    """
    pending = set(tasks)
    while pending:
        seen = sink.lines_written
        _, pending = await asyncio.wait(pending, timeout=idle_s)
        if pending and sink.lines_written == seen and not sink.writers_waiting:
            break
    return pending
