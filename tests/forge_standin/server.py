"""Run the stand-in on a real loopback port (uvicorn in a background thread)."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from .app import Standin, create_standin
from .openapi import OpenAPIChecker


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class StandinServer:
    """``with StandinServer(repos_root) as srv:`` serves ``srv.standin`` at ``srv.url``.

    Binds 127.0.0.1 on a free port. Pass ``standin=`` to serve an existing one, or keyword
    arguments for ``create_standin``.
    """

    def __init__(
        self,
        repos_root: Path | None = None,
        checker: OpenAPIChecker | None = None,
        *,
        standin: Standin | None = None,
        startup_timeout: float = 10.0,
        **standin_kwargs: Any,
    ) -> None:
        if standin is None:
            if repos_root is None:
                raise TypeError("StandinServer needs repos_root or standin")
            standin = create_standin(repos_root, checker or OpenAPIChecker(), **standin_kwargs)
        self.standin = standin
        self.startup_timeout = startup_timeout
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.url = ""

    def start(self) -> StandinServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.standin.app,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws="none",
            http="h11",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(target=self._run, name=f"forge-standin:{port}", daemon=True)
        self._thread.start()
        ready = self._server.ready.wait(self.startup_timeout)
        if not ready or not self._server.started:
            error = self._error
            self.stop()
            raise RuntimeError(f"forge stand-in failed to start: {error!r}")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def _run(self) -> None:
        assert self._server is not None
        assert self._sock is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._server.ready.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                raise RuntimeError("forge stand-in thread did not stop")
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._thread = None
        self._server = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
