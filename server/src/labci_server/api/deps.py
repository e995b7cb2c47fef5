from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ..context import ServerContext


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def bearer(authorization: Annotated[str | None, Header()] = None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


Ctx = Annotated[ServerContext, Depends(get_context)]
Bearer = Annotated[str | None, Depends(bearer)]
