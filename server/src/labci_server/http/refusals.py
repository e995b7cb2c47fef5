"""Answers the guards give before a request reaches a route: JSON `{"error": ...}`, like
the application's own error handler, sent straight on the ASGI channel."""

from __future__ import annotations

import json

from starlette.types import Send

# Sent when the request (or its body) is not read to the end: the server must not keep
# reading and discarding what the client still sends, so the connection goes.
CLOSE = (b"connection", b"close")


async def send_refusal(
    send: Send, status: int, message: str, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        CLOSE,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
