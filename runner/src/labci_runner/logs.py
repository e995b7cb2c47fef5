"""Batching of a job attempt's log lines towards the server.

`LogSink` numbers every line with a `seq` contiguous from 0 for the attempt, queues it
(bounded, so a chatty step is slowed down by backpressure instead of eating memory) and
sends batches through an async `send(lines)` callable — `AttemptChannel.logs` in the
agent, anything in tests. A batch leaves when it has waited `flush_interval_s`, or holds
`max_batch_lines` lines or `max_batch_bytes` of text; closing the sink sends the rest.

Sending is best effort: `send` already retries transport errors, so a batch that still
fails is dropped with a warning rather than stopping the experiment. A `StaleAttempt`
stops sending for good; the job notices it on its next step or completion report.

Memory stays bounded whatever a step prints: the queue holds at most `max_queued_bytes`
of text (a writer waits for room), and an attempt keeps at most `max_bytes` of step
output: past it, one `system` line says the log was truncated and later stdout/stderr
lines are dropped (still read, so the step never blocks on a full pipe). `system` lines
are always kept, so a timeout or a failure is still explained.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from labci_runner.errors import LabciRunnerError, StaleAttempt

logger = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr", "system"]
SendLines = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class LogLine:
    seq: int
    step: int
    stream: Stream
    text: str
    ts: float


class LogSink:
    """Async context manager: `async with LogSink(send) as sink: await sink.write(...)`."""

    def __init__(
        self,
        send: SendLines,
        *,
        flush_interval_s: float = 0.2,
        max_batch_lines: int = 200,
        max_batch_bytes: int = 64 * 1024,
        max_queued_lines: int = 10_000,
        max_queued_bytes: int = 8 * 1024 * 1024,
        max_bytes: int | None = None,
    ) -> None:
        self._send = send
        self.flush_interval_s = flush_interval_s
        self.max_batch_lines = max_batch_lines
        self.max_batch_bytes = max_batch_bytes
        self.max_queued_bytes = max_queued_bytes
        self.max_bytes = max_bytes
        self._queue: asyncio.Queue[LogLine | None] = asyncio.Queue(max_queued_lines)
        self._queued_bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._next_seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._stale = False
        self.dropped_lines = 0
        self.output_bytes = 0
        self.truncated_lines = 0

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

    async def _enqueue(self, step: int, stream: Stream, text: str) -> None:
        if self._stale or (self._sender is not None and self._sender.done()):
            # Nobody would ever take the line off a full queue: drop instead of blocking.
            self.dropped_lines += 1
            return
        while self._queued_bytes > self.max_queued_bytes:
            if self._stale or (self._sender is not None and self._sender.done()):
                self.dropped_lines += 1
                return
            self._room.clear()
            await self._room.wait()
        line = LogLine(self._next_seq, step, stream, text, time.time())
        self._next_seq += 1
        self._queued_bytes += len(text)
        await self._queue.put(line)

    async def close(self) -> None:
        """Send everything queued so far, then stop the sender task."""
        if self._sender is None:
            return
        sender, self._sender = self._sender, None
        # The sentinel may have to wait for room, like any line; shielding keeps the
        # final flush going even when the job's task is being cancelled around us.
        await asyncio.shield(self._queue.put(None))
        await asyncio.shield(sender)

    async def _send_batches(self) -> None:
        closing = False
        while not closing:
            batch, closing = await self._collect_batch()
            if batch:
                await self._deliver(batch)

    def _taken(self, line: LogLine) -> None:
        self._queued_bytes -= len(line.text)
        if self._queued_bytes <= self.max_queued_bytes:
            self._room.set()

    async def _collect_batch(self) -> tuple[list[LogLine], bool]:
        """Wait for a first line, then gather more until a flush trigger; True = closing."""
        first = await self._queue.get()
        if first is None:
            return [], True
        self._taken(first)
        batch, size = [first], len(first.text)
        deadline = asyncio.get_running_loop().time() + self.flush_interval_s
        while len(batch) < self.max_batch_lines and size < self.max_batch_bytes:
            remaining_s = deadline - asyncio.get_running_loop().time()
            if remaining_s <= 0:
                break
            try:
                line = await asyncio.wait_for(self._queue.get(), remaining_s)
            except TimeoutError:
                break
            if line is None:
                return batch, True
            self._taken(line)
            batch.append(line)
            size += len(line.text)
        return batch, False

    async def _deliver(self, batch: list[LogLine]) -> None:
        if self._stale:
            return
        try:
            await self._send([asdict(line) for line in batch])
        except StaleAttempt:
            self._stale = True
            self._drain()
            self._room.set()
        except LabciRunnerError as exc:
            self.dropped_lines += len(batch)
            logger.warning("dropped %d log lines: %s", len(batch), exc)

    def _drain(self) -> None:
        """Empty the queue after a 409 so writers never block on a dead attempt."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                self._taken(item)
            if item is None:
                # Keep the close sentinel: the sender loop must still see it.
                self._queue.put_nowait(None)
                return
