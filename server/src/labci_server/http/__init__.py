"""HTTP hardening shared by every route: body caps, read timeouts, connection limits,
parameter guards, rate limits, security headers and the API docs page.

`install_guards(app, settings)` runs at the end of `create_app`; `serve_options(settings)`
gives `labci serve` its uvicorn settings. Outermost first, a request meets:

    SecurityHeaders   nosniff on every answer; CSP and frame denial on HTML   (headers.py)
    TargetGuard       400 for NUL or invalid UTF-8 in the path or query       (targets.py)
    BodyGuard         413 over the route's cap, 408 for a stalled body        (bodies.py)
    ... the application (sessions, routes; `limit_writes` on write routes)    (ratelimit.py)

Below them, uvicorn's protocol closes connections that do not finish their headers in
time and sheds connections beyond the cap (protocol.py, serving.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from ..errors import ConfigError
from ..settings import Settings
from .bodies import BodyGuard
from .headers import SecurityHeaders
from .ratelimit import install_write_limiter
from .serving import serve_options
from .targets import TargetGuard

__all__ = ["install_guards", "serve_options"]


def install_guards(app: FastAPI, settings: Settings) -> None:
    """Add the middleware that caps and guards every request, and the docs page."""
    if settings.redis_url is None:  # create_app has refused this already
        raise ConfigError("LABCI_REDIS_URL is not set")
    # Imported here: the docs routes declare policies (auth), and auth uses this package's
    # parameter types.
    from .docs import install_docs

    install_write_limiter(app, settings.redis_url, settings.write_rate_limit)
    install_docs(app)
    # add_middleware puts each one outside those added before it.
    app.add_middleware(BodyGuard, read_timeout_s=settings.body_read_timeout_s)
    app.add_middleware(TargetGuard)
    app.add_middleware(SecurityHeaders)
