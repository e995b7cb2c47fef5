"""A signed request body, verified without holding it in memory first.

GitHub signs a delivery's raw body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`),
and the signature can only be checked once the whole body has arrived. Buffering bodies
before checking let twenty unsigned 25 MB bodies cost half a gigabyte; here the HMAC is
updated as the body streams and the body itself goes to a spooled temporary file (the
first `SPOOL_MEMORY_BYTES` in memory, the rest on disk). Only a body whose signature
matches is read back into memory, for the handler to parse.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import tempfile
from typing import IO, Final

from starlette.requests import Request

from ..errors import LabciError, Unauthorized

SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
SPOOL_MEMORY_BYTES: Final = 512 * 1024
_SIGNATURE_FORMAT = re.compile(r"sha256=([0-9a-fA-F]{64})")


class BodyTooLarge(LabciError):
    status_code = 413


def claimed_mac(header: str | None) -> str:
    """The hex HMAC a request claims; Unauthorized before any body is read if malformed."""
    found = _SIGNATURE_FORMAT.fullmatch(header.strip()) if header else None
    if found is None:
        raise Unauthorized(f"missing or malformed {SIGNATURE_HEADER}: expected sha256=<hex>")
    return found.group(1).lower()


async def read_verified_body(request: Request, secret: str, cap: int) -> bytes:
    """The raw body of `request` if its X-Hub-Signature-256 matches it under `secret`.

    Raises Unauthorized (missing, malformed or wrong signature) and BodyTooLarge (over
    `cap` bytes); at most SPOOL_MEMORY_BYTES of a refused body are ever held in memory.
    """
    claimed = claimed_mac(request.headers.get(SIGNATURE_HEADER))
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise BodyTooLarge(
                    f"request body too large: this route accepts at most {cap} bytes"
                )
            mac.update(chunk)
            await _spool(spool, chunk, in_memory=size <= SPOOL_MEMORY_BYTES)
        if not hmac.compare_digest(mac.hexdigest(), claimed):
            raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body")
        spool.seek(0)
        if size <= SPOOL_MEMORY_BYTES:
            return spool.read()
        return await asyncio.to_thread(spool.read)


async def _spool(spool: IO[bytes], chunk: bytes, *, in_memory: bool) -> None:
    # Past the in-memory part the spool writes to a file: off the event loop.
    if in_memory:
        spool.write(chunk)
    else:
        await asyncio.to_thread(spool.write, chunk)
