"""An HTTP proxy between one runner and `labci serve` that records every exchange: what
that runner sent, when, and what the server answered. A test tells one runner's calls
from another's (they share the server's access log) and reads its job tokens from the
fetch answers, to send what a paused runner would send once it is back."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from helpers.services import free_port

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Exchange:
    at: float  # time.time() when the request, body read, went to the server
    method: str
    path: str  # without the query string
    status: int
    response: bytes

    def json(self) -> Any:
        return json.loads(self.response)


class RecordingProxy:
    """Use as a context manager; `url` is what the runner gets as LABCI_SERVER_URL."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url.rstrip("/")
        self.port = free_port()
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def recorded(self, path_prefix: str, *, since: float = 0.0) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if e.path.startswith(path_prefix) and e.at >= since]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the runner's client expects

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _forward(self) -> None:
                body = self._body()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                at = time.time()
                try:
                    answer = httpx.request(
                        self.command,
                        proxy.target_url + self.path,
                        content=body,
                        headers=headers,
                        timeout=60,
                    )
                except httpx.TransportError as exc:  # the server is away: as a gateway says
                    answer = httpx.Response(502, text=f"{type(exc).__name__}: {exc}")
                with proxy._lock:
                    proxy.exchanges.append(
                        Exchange(
                            at,
                            self.command,
                            self.path.split("?")[0],
                            answer.status_code,
                            answer.content,
                        )  # fmt: skip
                    )
                self.send_response(answer.status_code)
                self.send_header("content-type", answer.headers.get("content-type", ""))
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:  # the exchanges are the record
                pass

        return Handler
