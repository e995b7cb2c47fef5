"""How large a request body each route family may send, checked before anything parses it.

The numbers follow what the callers send: GitHub caps its own deliveries at 25 MB; a local
hook's event, a dispatch and a runner's log batch are small JSON documents (a runner sends
logs in batches well under 1 MiB); every other runner call and every form or API write is
a few KiB, but a secret's value may be 48 KiB (GitHub's own limit). Artifact uploads are not capped here: their handler streams them to disk within
the job's own `max-size`.
"""

from __future__ import annotations

import re
from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

WEBHOOK_BYTES: Final = 25 * MIB
EVENT_BYTES: Final = 1 * MIB
LOG_BATCH_BYTES: Final = 1 * MIB
DEFAULT_BYTES: Final = 64 * KIB
# A secret's value is at most 48 KiB; JSON may spell each byte in six (`\u00XX`).
SECRET_BYTES: Final = 6 * 48 * KIB + KIB

_LOG_BATCH = re.compile(r"/api/v1/runner/jobs/[^/]+/logs")
_ARTIFACT = re.compile(r"/api/v1/runner/jobs/[^/]+/artifacts/.+")
_SECRET = re.compile(r"/api/v1/(?:repos/[^/]+/[^/]+/)?secrets/[^/]+")
_EXACT: Final = {
    "/webhooks/github": WEBHOOK_BYTES,
    "/webhooks/git": EVENT_BYTES,
    "/api/v1/dispatches": EVENT_BYTES,
}


def body_cap(method: str, path: str) -> int | None:
    """The most body bytes `method path` may send; None: the handler enforces its own."""
    if path in _EXACT:
        return _EXACT[path]
    if method == "POST" and _LOG_BATCH.fullmatch(path):
        return LOG_BATCH_BYTES
    if method == "PUT" and _ARTIFACT.fullmatch(path):
        return None
    if method == "PUT" and _SECRET.fullmatch(path):
        return SECRET_BYTES
    return DEFAULT_BYTES
