"""LogSink batching, sequence numbers and failure handling, against a plain async callable."""

from __future__ import annotations

import asyncio
from typing import Any

from labci_runner.errors import ServerRejected, ServerUnavailable, StaleAttempt
from labci_runner.logs import LogSink


class Batches:
    """Stores what is sent; the first `failures_left` tries fail with `fail_first`."""

    def __init__(self, fail_first: Exception | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.arrived = asyncio.Event()
        self.fail_first = fail_first
        self.failures_left = 1
        self.tries = 0

    async def send(self, lines: list[dict[str, Any]]) -> None:
        self.tries += 1
        if self.fail_first is not None and self.failures_left > 0:
            self.failures_left -= 1
            raise self.fail_first
        self.batches.append(lines)
        self.arrived.set()

    def seqs(self) -> list[int]:
        return [line["seq"] for batch in self.batches for line in batch]


async def test_seq_is_contiguous_and_batches_are_bounded() -> None:
    sent = Batches()
    async with LogSink(sent.send, max_batch_lines=200, flush_interval_s=5) as sink:
        for n in range(450):
            await sink.write(n % 3, "stdout", f"line {n}")
    assert sent.seqs() == list(range(450))
    assert [len(batch) for batch in sent.batches] == [200, 200, 50]
    assert sent.batches[0][7] == {
        "seq": 7,
        "step": 1,
        "stream": "stdout",
        "text": "line 7",
        "ts": sent.batches[0][7]["ts"],
    }


async def test_batches_are_cut_by_size() -> None:
    sent = Batches()
    async with LogSink(sent.send, max_batch_bytes=1000, flush_interval_s=5) as sink:
        for _ in range(10):
            await sink.write(0, "stderr", "x" * 300)
    assert [len(batch) for batch in sent.batches] == [4, 4, 2]


async def test_a_quiet_job_is_flushed_by_the_timer() -> None:
    sent = Batches()
    async with LogSink(sent.send, flush_interval_s=0.05) as sink:
        await sink.write(0, "system", "hello")
        await asyncio.wait_for(sent.arrived.wait(), 5)
        assert sent.seqs() == [0]


async def test_a_failed_batch_is_sent_again_until_stored_and_nothing_is_lost() -> None:
    sent = Batches(fail_first=ServerUnavailable("down"))
    sent.failures_left = 3  # the server stays down past several retries
    async with LogSink(
        sent.send, flush_interval_s=5, max_batch_lines=2, retry_interval_s=0
    ) as sink:
        for n in range(4):
            await sink.write(0, "stdout", str(n))
    # Two batches go at once, so they may arrive in either order: each line carries its seq.
    stored = sorted((line["seq"], line["text"]) for batch in sent.batches for line in batch)
    assert stored == [(0, "0"), (1, "1"), (2, "2"), (3, "3")]
    assert sent.tries == 3 + 2  # 3 failed tries, then one per batch
    assert (sink.dropped_lines, sink.refused_lines) == (0, 0)


class Gate:
    """A send that holds every batch until `open` is set, counting those held at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.held = 0
        self.most_held = 0
        self.two_held = asyncio.Event()
        self.seqs: list[int] = []

    async def send(self, lines: list[dict[str, Any]]) -> None:
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        if self.held == 2:
            self.two_held.set()
        await self.open.wait()
        self.held -= 1
        self.seqs.extend(line["seq"] for line in lines)


async def test_two_batches_are_in_flight_while_the_server_stores_one() -> None:
    gate = Gate()
    async with LogSink(gate.send, flush_interval_s=5, max_batch_lines=2) as sink:
        for n in range(8):
            await sink.write(0, "stdout", str(n))
        await asyncio.wait_for(gate.two_held.wait(), 5)
        gate.open.set()
    assert gate.most_held == 2
    assert sorted(gate.seqs) == list(range(8))


async def test_one_in_flight_sends_in_order() -> None:
    gate = Gate()
    gate.open.set()
    async with LogSink(gate.send, flush_interval_s=5, max_batch_lines=2, max_in_flight=1) as sink:
        for n in range(8):
            await sink.write(0, "stdout", str(n))
    assert (gate.most_held, gate.seqs) == (1, list(range(8)))


async def test_a_refused_batch_leaves_a_marker_in_its_place() -> None:
    sent = Batches(fail_first=ServerRejected(413, "body too large"))
    async with LogSink(sent.send, flush_interval_s=5, max_batch_lines=3) as sink:
        for n in range(5):
            await sink.write(1, "stdout", str(n))
    lines = [line for batch in sent.batches for line in batch]
    assert [(line["seq"], line["stream"], line["text"]) for line in lines] == [
        (0, "system", "log lines 0-2 were refused: the server answered 413: body too large"),
        (3, "stdout", "3"),
        (4, "stdout", "4"),
    ]
    assert sink.refused_lines == 3


async def test_stale_attempt_stops_sending_without_blocking_writers() -> None:
    sent = Batches(fail_first=StaleAttempt(409, "attempt 2 is current"))
    async with LogSink(sent.send, flush_interval_s=0.01, max_queued_lines=10) as sink:
        await sink.write(0, "stdout", "first")
        for _ in range(200):  # far more than the queue holds: must not block
            await asyncio.wait_for(sink.write(0, "stdout", "more"), 5)
            await asyncio.sleep(0)
    assert sent.batches == []


async def test_output_past_the_cap_is_dropped_with_one_marker_and_system_lines_kept() -> None:
    sent = Batches()
    async with LogSink(sent.send, max_bytes=100, flush_interval_s=0.01) as sink:
        for n in range(10):
            await sink.write(0, "stdout", f"{n:019d}")  # 20 bytes a line with the newline gone
        await sink.write(0, "system", "timed out after 1 min")
        await sink.write(1, "stderr", "more")
    lines = [line for batch in sent.batches for line in batch]
    assert [(line["stream"], line["text"]) for line in lines] == [
        *[("stdout", f"{n:019d}") for n in range(5)],
        (
            "system",
            "log truncated: the steps wrote more than 100 bytes; later output was read and"
            " discarded",
        ),
        ("system", "timed out after 1 min"),
    ]
    assert [line["seq"] for line in lines] == list(range(7))  # no gap for dropped lines
    assert sink.truncated_lines == 6


async def test_a_slow_server_makes_writers_wait_instead_of_piling_up_memory() -> None:
    release = asyncio.Event()
    received: list[int] = []

    async def slow(lines: list[dict[str, Any]]) -> None:
        await release.wait()
        received.extend(line["seq"] for line in lines)

    async def write_many(sink: LogSink) -> None:
        for _ in range(50):  # 50 kB in all, against a 10 kB queue
            await sink.write(0, "stdout", "x" * 1000)

    async with LogSink(
        slow, max_queued_bytes=10_000, max_batch_lines=1, flush_interval_s=0.01
    ) as sink:
        writing = asyncio.create_task(write_many(sink))
        await asyncio.sleep(0.1)
        assert not writing.done()  # the writer waits for room
        assert sink.queued_bytes <= 11_000
        release.set()
        await writing
    assert received == list(range(50))
