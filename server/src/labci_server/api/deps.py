from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Header, Path, Request

from ..context import ServerContext

MAX_ROW_ID: Final = 2**31 - 1  # PostgreSQL `integer`: a larger id can only be a 404


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def clamp(limit: int, maximum: int) -> int:
    """A `limit` query parameter within 1..maximum: `-1` or 2**70 never lift a cap."""
    return max(1, min(limit, maximum))


Ctx = Annotated[ServerContext, Depends(get_context)]
Bearer = Annotated[str | None, Depends(bearer)]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
