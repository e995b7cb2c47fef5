"""Bounded integer parameters, so that no number in a path or query string gives a 500.

Row ids are PostgreSQL `integer`s: anything outside 1..2**31-1 can only be a 404, and
passing 2**63 on to the driver raised OverflowError (a 500). FastAPI answers 422 for a
value outside these bounds before the handler runs.

    @router.get("/api/v1/runs/{run_id}")
    async def run(run_id: RowId, limit: int | None = None): ...
        rows = await latest_runs(session, limit=clamp_limit(limit, default=50, maximum=500))
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Path, Query
from pydantic import Field

MAX_INT32: Final = 2**31 - 1  # PostgreSQL `integer`

# A row id in a path: /runs/{run_id}, /jobs/{job_id}, /tokens/{token_id}.
RowId = Annotated[int, Path(ge=1, le=MAX_INT32)]
# A job attempt number in a query string (?attempt=2) ...
AttemptQuery = Annotated[int, Query(ge=1, le=MAX_INT32)]
# ... and in a JSON body (a pydantic model's field).
Attempt = Annotated[int, Field(ge=1, le=MAX_INT32)]
# A zero-based position in a path, such as a step's index.
IndexPath = Annotated[int, Path(ge=0, le=MAX_INT32)]


def clamp_limit(value: int | None, default: int, maximum: int) -> int:
    """A `limit` query parameter within 1..maximum; `default` when it is absent.

    `?limit=-1` or `?limit=0` become 1 and `?limit=2**70` becomes `maximum`: no value lifts
    the cap or reaches the database out of range.
    """
    if value is None:
        return default
    return max(1, min(value, maximum))
