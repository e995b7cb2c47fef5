"""Request targets that no route can take: a NUL byte or invalid UTF-8 in the path or the
query string, percent-encoded or not, is answered 400 before routing.

Without this a `%00` reaches the database as text (PostgreSQL refuses NUL in `text`: a
5xx), and invalid UTF-8 is silently replaced by U+FFFD by the server's decoding.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from .refusals import send_refusal


def target_problem(raw: bytes, where: str) -> str | None:
    decoded = unquote_to_bytes(raw)
    if b"\x00" in decoded:
        return f"the {where} contains a NUL byte (%00); remove it"
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return f"the {where} is not valid UTF-8 once percent-decoded; encode it as UTF-8"
    return None


def request_target_problem(scope: Scope) -> str | None:
    # uvicorn and httpx's ASGITransport give the raw path; others may give only the decoded one.
    raw_path = scope.get("raw_path") or str(scope["path"]).encode("utf-8", "surrogatepass")
    return target_problem(raw_path, "path") or target_problem(
        scope.get("query_string", b""), "query string"
    )


class TargetGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = request_target_problem(scope)
            if problem is not None:
                await send_refusal(send, 400, problem)
                return
        await self.app(scope, receive, send)
