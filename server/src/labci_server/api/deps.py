from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..context import ServerContext
from ..http.params import MAX_INT32 as MAX_ROW_ID
from ..http.params import RowId, clamp_limit
from ..tokens import bearer_value

__all__ = ["MAX_ROW_ID", "Bearer", "Ctx", "RowId", "clamp", "get_context"]


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    return bearer_value(authorization)


def clamp(limit: int, maximum: int) -> int:
    """A `limit` query parameter within 1..maximum: `-1` or 2**70 never lift a cap."""
    return clamp_limit(limit, default=limit, maximum=maximum)


Ctx = Annotated[ServerContext, Depends(get_context)]
Bearer = Annotated[str | None, Depends(bearer)]
