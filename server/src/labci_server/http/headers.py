"""Security headers on every answer.

HTML pages get a Content-Security-Policy, `X-Frame-Options: DENY` and
`Referrer-Policy: same-origin`; every answer gets `X-Content-Type-Options: nosniff`. A
header a route set itself wins (badges send their own, stricter, `default-src 'none'`).

The policy, directive by directive:
- `default-src 'self'`: everything (scripts, fetches, fonts) from this server only; the
  API docs page loads its Swagger UI assets from here (`http.docs`), never from a CDN;
- `img-src 'self' data:`: Swagger UI draws its icons as `data:` SVG images;
- `style-src 'self' 'unsafe-inline'`: the pages keep their small stylesheet inline and
  Swagger UI sets `style` attributes; no page runs inline script, so style injection
  cannot run code, and everything a pull request controls is escaped;
- `script-src 'self'`: no inline script anywhere (the docs page starts from a file);
- `frame-ancestors 'none'` (and `X-Frame-Options: DENY` for older browsers): no page can
  be framed, so no click-jacking of the sign-out, token or cancel buttons;
- `base-uri 'none'`, `form-action 'self'`, `object-src 'none'`: an injected `<base>`,
  form target or plugin cannot send anything elsewhere.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
HTML_HEADERS: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
EVERY_ANSWER: Final = ((b"x-content-type-options", b"nosniff"),)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    wanted = list(EVERY_ANSWER)
    if content_type.lower().startswith(b"text/html"):
        wanted.extend(HTML_HEADERS)
    return [*headers, *((name, value) for name, value in wanted if name not in present)]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = with_security_headers(list(message.get("headers", [])))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
