"""`labci serve --workers N`: N server processes on one listening socket.

One Python process takes signed webhooks at about 230 a second (issue 14); ingest scales
with processes. The parent binds the socket once and forks the workers, each of which
builds its own app (database pool, Redis pool) and runs uvicorn on the shared socket; the
kernel hands each connection to one of them. uvicorn's own `--workers` starts its workers
by spawning fresh interpreters that are handed a pickled configuration, which labci's
guarded protocol class (built at start from the settings) and its app object are not —
hence forking here.

The parent supervises: a worker that dies is started again (after a pause, so one that
dies at once does not spin); SIGTERM or SIGINT stops every worker gracefully (uvicorn's
own shutdown: open requests finish) and then the parent.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve_forked(workers: int, sock: socket.socket, run_one: Callable[[socket.socket], Any]) -> int:
    """Run `run_one(sock)` in `workers` forked processes until SIGTERM/SIGINT; exit code."""
    context = multiprocessing.get_context("fork")
    stopping = False
    children: dict[int, multiprocessing.process.BaseProcess] = {}

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in list(children.values()):
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    def child_main(sock: socket.socket) -> None:
        # The parent's handlers are not the child's: uvicorn installs its own, and puts
        # back what it found when it stops (the default, then).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        run_one(sock)

    def start(index: int) -> None:
        process = context.Process(target=child_main, args=(sock,), name=f"labci-serve-{index}")
        process.start()
        children[index] = process
        log.info("server worker %d started (pid %s)", index, process.pid)
        if stopping and process.pid is not None:  # a stop that came while it was forked
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)

    # Handlers first: a SIGTERM while the workers start must stop every one of them.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(workers):
        if not stopping:
            start(index)
    while not stopping:
        wait([c.sentinel for c in children.values()])
        if stopping:
            break
        for index, child in list(children.items()):
            if child.is_alive():
                continue
            child.join()
            log.warning(
                "server worker %d (pid %s) exited with %s; starting it again",
                index,
                child.pid,
                child.exitcode,
            )
            time.sleep(RESTART_PAUSE_S)
            if not stopping:
                start(index)
    for child in list(children.values()):
        child.join()
    return 0
