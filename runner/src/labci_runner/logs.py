"""Batching of a job attempt's log lines towards the server.

`LogSink` numbers every line with a `seq` contiguous from 0 for the attempt, queues it
(bounded, so a chatty step is slowed down by backpressure instead of eating memory) and
sends batches through an async `send(lines)` callable — `AttemptChannel.logs` in the
agent, anything in tests. A batch leaves when it has waited `flush_interval_s`, or holds
`max_batch_lines` lines or `max_batch_bytes` of text; closing the sink sends the rest.

Sending is best effort: `send` already retries transport errors, so a batch that still
fails is dropped with a warning rather than stopping the experiment. A `StaleAttempt`
stops sending for good; the job notices it on its next step or completion report.
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
    ) -> None:
        self._send = send
        self.flush_interval_s = flush_interval_s
        self.max_batch_lines = max_batch_lines
        self.max_batch_bytes = max_batch_bytes
        self._queue: asyncio.Queue[LogLine | None] = asyncio.Queue(max_queued_lines)
        self._next_seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._stale = False
        self.dropped_lines = 0

    async def __aenter__(self) -> LogSink:
        self._sender = asyncio.create_task(self._send_batches())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def write(self, step: int, stream: Stream, text: str) -> None:
        """Queue one line; waits while the queue is full (backpressure on the step)."""
        line = LogLine(self._next_seq, step, stream, text, time.time())
        self._next_seq += 1
        if self._stale or (self._sender is not None and self._sender.done()):
            # Nobody would ever take the line off a full queue: drop instead of blocking.
            self.dropped_lines += 1
            return
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

    async def _collect_batch(self) -> tuple[list[LogLine], bool]:
        """Wait for a first line, then gather more until a flush trigger; True = closing."""
        first = await self._queue.get()
        if first is None:
            return [], True
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
        except LabciRunnerError as exc:
            self.dropped_lines += len(batch)
            logger.warning("dropped %d log lines: %s", len(batch), exc)

    def _drain(self) -> None:
        """Empty the queue after a 409 so writers never block on a dead attempt."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                # Keep the close sentinel: the sender loop must still see it.
                self._queue.put_nowait(None)
                return
