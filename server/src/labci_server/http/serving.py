"""How `labci serve` runs uvicorn: header and keep-alive timeouts, a connection cap, and
enough file descriptors for it (see docs/reverse-proxy.md for the proxy in front)."""

from __future__ import annotations

import logging
import resource
from typing import Any, Final

from ..settings import Settings
from .protocol import guarded_protocol

log = logging.getLogger(__name__)

# Descriptors kept back from client connections: the database pool, Redis, the listening
# socket, log files and artifacts being written.
RESERVED_FDS: Final = 256
# h11's own default, stated: request headers larger than this are answered 400.
MAX_HEADER_BYTES: Final = 16 * 1024


def raise_open_file_limit() -> int:
    """Lift this process's soft RLIMIT_NOFILE to the hard limit; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def connection_cap(wanted: int, open_file_limit: int) -> int:
    """`LABCI_MAX_CONNECTIONS`, lowered if the descriptors cannot hold that many."""
    room = max(open_file_limit - RESERVED_FDS, 16)
    if wanted > room:
        log.warning(
            "LABCI_MAX_CONNECTIONS=%d is above what %d open files allow; serving %d at most",
            wanted,
            open_file_limit,
            room,
        )
    return min(wanted, room)


def serve_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` beyond the app, host and port.

    Called once as `labci serve` starts: it also raises the process's open-file limit.
    """
    cap = connection_cap(settings.max_connections, raise_open_file_limit())
    return {
        "http": guarded_protocol(header_timeout_s=settings.header_timeout_s, max_connections=cap),
        "limit_concurrency": cap,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
