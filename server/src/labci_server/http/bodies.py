"""Request bodies capped and timed before any handler parses them.

`BodyGuard` is pure ASGI, outside every route:

- a `Content-Length` above the route's cap (see `caps.body_cap`) is answered 413 at once,
  without reading a byte of the body;
- a body without one (chunked) is counted as it streams and answered 413 as soon as it
  passes the cap; at most one socket read more than the cap is ever taken in;
- a body that pauses longer than `read_timeout_s` between two parts is answered 408;
- any answer given before the body was read to its end closes the connection, so the
  server never goes on reading and discarding what a client still sends.

Handlers (and FastAPI's body parsing, which turns exceptions into 400s) may catch what the
guarded `receive` raises; the guard then replaces whatever answer they send with its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .caps import body_cap
from .refusals import CLOSE, send_refusal


class _BodyRefused(Exception):
    """Raised into the handler that reads a body the guard refuses (caught by the guard)."""


@dataclass
class _Refusal:
    status: int
    message: str


@dataclass
class _BodyReader:
    receive: Receive
    cap: int | None
    read_timeout_s: float
    complete: bool
    received_bytes: int = 0
    refusal: _Refusal | None = field(default=None)

    async def guarded_receive(self) -> Message:
        if self.refusal is not None:
            raise _BodyRefused(self.refusal.message)
        if self.complete:  # waiting for a disconnect, e.g. under a streaming response
            return await self.receive()
        try:
            async with asyncio.timeout(self.read_timeout_s):
                message = await self.receive()
        except TimeoutError:
            raise self._refuse(
                408, f"request body stalled: nothing arrived for {self.read_timeout_s:g} s"
            ) from None
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.received_bytes += len(message.get("body", b""))
        if self.cap is not None and self.received_bytes > self.cap:
            raise self._refuse(413, _too_large(self.cap))
        self.complete = not message.get("more_body", False)
        return message

    def _refuse(self, status: int, message: str) -> _BodyRefused:
        self.refusal = _Refusal(status, message)
        return _BodyRefused(message)


def _too_large(cap: int) -> str:
    return f"request body too large: this route accepts at most {cap} bytes"


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length (the HTTP parser has already refused a malformed one)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _has_body(scope: Scope, declared: int | None) -> bool:
    if declared is not None:
        return declared > 0
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])


class BodyGuard:
    def __init__(self, app: ASGIApp, *, read_timeout_s: float) -> None:
        self.app = app
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope["method"], scope["path"])
        declared = declared_length(scope)
        if cap is not None and declared is not None and declared > cap:
            await send_refusal(send, 413, _too_large(cap))
            return
        reader = _BodyReader(
            receive, cap, self.read_timeout_s, complete=not _has_body(scope, declared)
        )
        await _run_guarded(self.app, scope, reader, send)


async def _run_guarded(app: ASGIApp, scope: Scope, reader: _BodyReader, send: Send) -> None:
    answered = False

    async def guarded_send(message: Message) -> None:
        nonlocal answered
        if reader.refusal is not None:  # drop the handler's own answer, give the guard's
            if not answered:
                answered = True
                await send_refusal(send, reader.refusal.status, reader.refusal.message)
            return
        if message["type"] == "http.response.start":
            answered = True
            if not reader.complete:
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
        await send(message)

    try:
        await app(scope, reader.guarded_receive, guarded_send)
    except _BodyRefused:
        pass
    except Exception:
        if reader.refusal is None:
            raise
    if reader.refusal is not None and not answered:
        await send_refusal(send, reader.refusal.status, reader.refusal.message)
