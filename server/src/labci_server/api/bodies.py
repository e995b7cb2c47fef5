"""JSON bodies parsed after the route's policy: a dependency, not a FastAPI body parameter,
because FastAPI reads a declared body before any dependency runs — and a caller without
the right credential must be refused before its body is read. The HTTP guards cap the
body's size before it gets here."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import LabciError

M = TypeVar("M", bound=BaseModel)


class Unprocessable(LabciError):
    status_code = 422


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            return model.model_validate_json(raw or b"null")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors(include_url=False)[:5]
            )
            raise Unprocessable(f"invalid body: {problems}") from exc

    parse.__name__ = f"{model.__name__.lower()}_body"
    return parse


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` describing the body, with nested models inlined (the description's
    `$ref`s point at its root, where a model's own `$defs` do not live)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, defs)}},
        }
    }


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]), defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node
