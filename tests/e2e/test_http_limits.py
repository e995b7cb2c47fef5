"""HTTP limits against a real `labci serve` (reliability A3 and D15; issue 9 item 4).

Raw loopback sockets play the attacker: oversized bodies with and without Content-Length,
2,000 connections that stall in their request line, twenty concurrent 25 MiB deliveries
with bad signatures and a 300 MiB anonymous runner upload. What the server read and how
much memory it took are read from /proc (`VmRSS`, `VmHWM`, `fd/`) of its process;
how much of a body it read is bounded by what a paced client managed to send.
Every wait waits for an event (an answer, a close, a descriptor count) under a hang guard.
"""

from __future__ import annotations

import fcntl
import os
import resource
import selectors
import socket
import struct
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from helpers.services import reset_postgres
from helpers.stack import Stack
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

KIB, MIB = 1024, 1024 * 1024
WEBHOOK_CAP = 25 * MIB
LOG_BATCH_CAP = 1 * MIB
UVICORN_READ = 256 * KIB  # asyncio reads a socket in pieces of up to this size
# Long enough for a loaded machine (two test suites on two cores) to open 2,000 sockets
# and for the server to accept them all before the first one times out.
HEADER_TIMEOUT_S = 30.0
SOCKET_GUARD_S = 60.0
RSS_GROWTH_LIMIT = 50 * MIB
STALLED = 2000


# --- the server process, seen from /proc ----------------------------------------------


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_descriptors(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def accepted(pid: int, port: int, client_ports: set[int]) -> int:
    """How many of these clients' connections the server's process holds: its socket
    descriptors' inodes against /proc/net/tcp's server-side rows. Counting exactly these,
    not all its descriptors, keeps out the rest of what it opens and closes meanwhile (a
    pool connection, an earlier test's keep-alive going away on a slow machine)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while listed
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    local = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if fields[1] == local and remote_port in client_ports and fields[9] in inodes:
            count += 1
    return count


class Memory:
    """Peak resident memory of a process from now on, against its resident memory now."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        self.start_bytes = proc_kib(pid, "VmRSS") * KIB

    def growth(self) -> int:
        return proc_kib(self.pid, "VmHWM") * KIB - self.start_bytes


# --- raw HTTP clients -----------------------------------------------------------------


@dataclass
class Exchange:
    sent: int  # body bytes the client managed to send
    answer: bytes
    finished: bool  # the whole body went out before the server answered or closed


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def fixed_body(total: int, piece: int = 64 * KIB) -> Iterator[bytes]:
    block = b"x" * piece
    for start in range(0, total, piece):
        yield block[: min(piece, total - start)]


def chunked_body(total: int, piece: int = 64 * KIB) -> Iterator[bytes]:
    for part in fixed_body(total, piece):
        yield b"%x\r\n" % len(part) + part + b"\r\n"
    yield b"0\r\n\r\n"


def send_until_answered(port: int, head: bytes, body: Iterator[bytes]) -> Exchange:
    """Send `head` and `body` as a slow client would: the next 64 KiB only once the
    server's process has read the last, stopping as soon as it answers or closes; then
    read the answer to its end.

    Pacing keeps kernel buffers out of the count: when the answer comes, the client has
    sent at most what the server's process read plus one piece. An acknowledgement alone
    would not do: the kernel acknowledges what lands in the server's receive buffer, which
    grows to tens of MiB (`tcp_rmem`) and fills while a loaded machine leaves the server
    unscheduled — so the wait is for the server's socket to have nothing left unread.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KIB)
    sock.settimeout(SOCKET_GUARD_S)
    sock.connect(("127.0.0.1", port))
    client_port = sock.getsockname()[1]
    sent, finished = 0, False
    with sock:
        sock.sendall(head)
        try:
            for piece in body:
                if _answered_while_waiting(sock, port, client_port):
                    break
                sock.sendall(piece)
                sent += len(piece)
            else:
                finished = True
        except (BrokenPipeError, ConnectionResetError):
            pass
        return Exchange(sent, _read_answer(sock), finished)


def _unacknowledged(sock: socket.socket) -> int:
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])


def _unread_by_server(server_port: int, client_port: int) -> int:
    """Bytes of this connection in the server's receive queue that its process has not
    read: `rx_queue` of the server's end in /proc/net/tcp (0 once the socket is gone)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16)
    return 0


def _answered_while_waiting(sock: socket.socket, server_port: int, client_port: int) -> bool:
    """Wait until the server's process has read everything sent; True if it answers (or
    closes) first."""
    deadline = time.monotonic() + SOCKET_GUARD_S

    def all_read() -> bool:
        return _unacknowledged(sock) == 0 and _unread_by_server(server_port, client_port) == 0

    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            if selector.select(timeout=0 if all_read() else 0.001):
                return True
            if all_read():
                return False
            if time.monotonic() > deadline:
                raise AssertionError("the server neither read nor answered for 60 s")


def _readable(sock: socket.socket) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(0))


def _read_answer(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(64 * KIB):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer


def status_of(answer: bytes) -> int:
    if not answer.startswith(b"HTTP/1.1 "):
        raise AssertionError(f"no HTTP answer: {answer[:200]!r}")
    return int(answer.split()[1])


# --- fixtures -------------------------------------------------------------------------


def module_database_url(root: Path) -> str:
    # As the `database_url` fixture does, for a server shared by this module's tests.
    pg = os.environ.get("LABCI_TEST_DATABASE_URL")
    if pg:
        reset_postgres(pg)
        return pg
    return f"sqlite:///{root / 'labci.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, redis_server, request) -> Iterator[tuple[Stack, int]]:
    """One `labci serve` for the module: every test here leaves it as it found it."""
    root = tmp_path_factory.mktemp("http-limits")
    stack = Stack(
        root=root,
        database_url=module_database_url(root),
        redis_url=redis_server,
        extra_env={"LABCI_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)},
    )
    failed_before = request.session.testsfailed
    try:
        stack.start_server()
        # Warm up: the first requests import and allocate what every later one reuses.
        for _ in range(3):
            assert httpx.get(stack.url + "/healthz", timeout=30).status_code == 200
        yield stack, stack.procs["server"].pid
    finally:
        stack.stop_all()
        if request.session.testsfailed > failed_before:
            print(stack.dump_logs())


# --- oversized bodies (A3) ------------------------------------------------------------


def test_a_declared_26_mib_webhook_is_refused_before_it_is_read(server):
    stack, pid = server
    total = 26 * MIB
    exchange = send_until_answered(
        stack.port,
        request_head(
            "POST",
            "/webhooks/github",
            {"Content-Length": str(total), "X-GitHub-Event": "push", "X-GitHub-Delivery": "big-1"},
        ),
        fixed_body(total),
    )
    assert status_of(exchange.answer) == 413
    assert b"request body too large" in exchange.answer
    assert not exchange.finished
    # Answered from the headers: the server read at most what one socket read takes in.
    assert exchange.sent <= UVICORN_READ + 64 * KIB


def test_a_chunked_26_mib_webhook_is_refused_at_the_cap(server):
    stack, pid = server
    exchange = send_until_answered(
        stack.port,
        request_head(
            "POST",
            "/webhooks/github",
            {
                "Transfer-Encoding": "chunked",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "big-2",
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
            },
        ),
        chunked_body(26 * MIB),
    )
    assert status_of(exchange.answer) == 413
    assert not exchange.finished
    # The cap, the chunk framing (10 bytes a piece), one socket read, one piece in flight.
    assert WEBHOOK_CAP < exchange.sent <= WEBHOOK_CAP + 8 * KIB + UVICORN_READ + 64 * KIB


def test_a_300_mib_anonymous_runner_upload_costs_neither_time_nor_memory(server):
    stack, pid = server
    memory = Memory(pid)
    total = 300 * MIB
    declared = send_until_answered(
        stack.port,
        request_head("POST", "/api/v1/runner/jobs/1/logs", {"Content-Length": str(total)}),
        fixed_body(total),
    )
    streamed = send_until_answered(
        stack.port,
        request_head("POST", "/api/v1/runner/jobs/1/logs", {"Transfer-Encoding": "chunked"}),
        chunked_body(total),
    )
    for exchange in (declared, streamed):
        assert status_of(exchange.answer) in (401, 413)
        assert exchange.sent < LOG_BATCH_CAP + 64 * MIB  # answered long before the end
    assert memory.growth() < RSS_GROWTH_LIMIT


# --- twenty bad signatures at once (D15) ----------------------------------------------


def test_twenty_25_mib_deliveries_with_bad_signatures_stay_out_of_memory(server):
    stack, pid = server
    body = b'{"zen": "' + b"z" * (WEBHOOK_CAP - 64 * KIB) + b'"}'
    memory = Memory(pid)

    def deliver(i: int) -> int:
        headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": f"bad-{i}",
            "X-Hub-Signature-256": "sha256=" + f"{i:02d}" * 32,
            "Content-Type": "application/json",
        }
        response = httpx.post(
            stack.url + "/webhooks/github", content=body, headers=headers, timeout=SOCKET_GUARD_S
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(deliver, range(20)))
    assert sorted(set(statuses)) <= [401, 413]
    assert memory.growth() < RSS_GROWTH_LIMIT, f"grew {memory.growth() / MIB:.0f} MiB"
    assert httpx.get(stack.url + "/healthz", timeout=30).status_code == 200


# --- stalled connections (D15) --------------------------------------------------------


@pytest.fixture
def descriptors() -> Iterator[None]:
    """Room in this process for 2,000 client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = STALLED + 512
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_2000_stalled_connections_leave_healthz_answering_and_are_closed(server, descriptors):
    stack, pid = server
    baseline = open_descriptors(pid)
    stalled: list[socket.socket] = []
    try:
        opened_at = time.monotonic()
        for _ in range(STALLED):
            sock = socket.create_connection(("127.0.0.1", stack.port), timeout=SOCKET_GUARD_S)
            sock.sendall(b"GET /healthz HT")  # half a request line, then nothing
            stalled.append(sock)
        ours = {sock.getsockname()[1] for sock in stalled}
        deadline = time.monotonic() + SOCKET_GUARD_S
        while (held := accepted(pid, stack.port, ours)) < STALLED:
            if time.monotonic() > deadline:
                closed = len([s for s in stalled if _readable(s)])
                pytest.fail(
                    f"the server holds {held} of {STALLED} connections after "
                    f"{time.monotonic() - opened_at:.0f}s; it closed {closed} (header timeout "
                    f"{HEADER_TIMEOUT_S:g}s)"
                )
            time.sleep(0.1)
        held_s = time.monotonic() - opened_at
        health = httpx.get(stack.url + "/healthz", timeout=30)
        assert health.status_code == 200
        # All 2,000 were still open while /healthz answered.
        assert not [s for s in stalled if _readable(s)], (
            f"connections closed before /healthz was asked ({held_s:.1f}s of "
            f"{HEADER_TIMEOUT_S}s): the machine is too slow for this header timeout"
        )
        answers = wait_for_all_closed(stalled)
        assert {status_of(a) for a in answers} == {408}
        wait_until(
            lambda: open_descriptors(pid) <= baseline + 16,
            what="the server to release the stalled connections' descriptors",
            timeout_s=SOCKET_GUARD_S,
        )
        assert httpx.get(stack.url + "/healthz", timeout=30).status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def wait_for_all_closed(socks: list[socket.socket]) -> list[bytes]:
    """Read every socket to its end (the server's close); the answers they got."""
    answers = {sock.fileno(): b"" for sock in socks}
    done: list[bytes] = []
    deadline = time.monotonic() + HEADER_TIMEOUT_S + SOCKET_GUARD_S
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while answers and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(64 * KIB)
                except ConnectionResetError:
                    data = b""
                if data:
                    answers[sock.fileno()] += data
                    continue
                selector.unregister(sock)
                done.append(answers.pop(sock.fileno()))
    assert not answers, f"{len(answers)} stalled connections still open after the header timeout"
    return done
