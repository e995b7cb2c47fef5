"""uvicorn's HTTP/1.1 protocol with a header-read deadline and a cap on open connections.

Why a subclass: uvicorn (0.54, h11 protocol) has no header timeout. Its only timer is the
keep-alive one, armed after a response completes and cancelled as soon as any byte of the
next request arrives; a connection that sends half a request line and stops is never
closed, and each holds a file descriptor. `limit_concurrency` answers 503 only once a
request's headers are complete, so it cannot shed those either. This protocol

- gives every request `header_timeout_s` from its first byte (or from the connection's
  start) to finish its headers; then it answers 408 (if anything arrived) and closes;
- closes a new connection at once when `max_connections` are already open, so a flood of
  stalled connections cannot take the descriptors the server needs for its database.

The h11 protocol is chosen explicitly (not uvicorn's "auto", which would prefer httptools
when installed) so that these guards always apply.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def _timeout_answer(header_timeout_s: float) -> bytes:
    body = json.dumps(
        {"error": f"request headers not received within {header_timeout_s:g} s"}
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    header_timeout_s: float = 10.0
    max_connections: int = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.close()
            return
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()  # headers complete (or the connection is going)
        else:
            self._arm_header_timer()  # part of the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # a partial request: say why it is dropped
            self.transport.write(_timeout_answer(self.header_timeout_s))
        self.transport.close()


def guarded_protocol(*, header_timeout_s: float, max_connections: int) -> type[H11Protocol]:
    """The protocol class to pass to uvicorn as `http=`, with these limits."""
    return type(
        "LabciH11Protocol",
        (GuardedH11Protocol,),
        {"header_timeout_s": header_timeout_s, "max_connections": max_connections},
    )
