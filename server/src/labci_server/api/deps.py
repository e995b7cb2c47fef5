from __future__ import annotations

from fastapi import Request

from ..context import ServerContext


def get_context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context
