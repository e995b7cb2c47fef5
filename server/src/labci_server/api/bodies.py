"""JSON bodies parsed after the route's policy: a dependency, not a FastAPI body parameter,
because FastAPI reads a declared body before any dependency runs — and a caller without
the right credential must be refused before its body is read. The HTTP guards cap the
body's size before it gets here."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import BadRequest, LabciError

M = TypeVar("M", bound=BaseModel)


class Unprocessable(LabciError):
    status_code = 422


class NulInBody(LabciError):
    status_code = 400


def refuse_nul(value: Any, where: str = "body") -> None:
    """A NUL character anywhere in a JSON body is a 400: PostgreSQL cannot store it in text,
    and no field of labci's has a use for one (log lines are cleaned, not refused)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise NulInBody(f"{where} contains a NUL character (\\u0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key, where)
            refuse_nul(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, list):
        for item in value:
            refuse_nul(item, where)


def problems(exc: ValidationError) -> str:
    """A validation error for a person: where and what, never the input echoed back."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False)[:5]
    )


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object with no NUL character anywhere, else a 400 saying which."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequest("body is not JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("body is not a JSON object")
    refuse_nul(data)
    return data


def json_body(model: type[M], *, nul_ok: bool = False) -> Callable[[Request], Awaitable[M]]:
    """A dependency parsing the body as `model`; `nul_ok` leaves NUL characters to the
    handler (log lines replace them)."""

    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            parsed = model.model_validate_json(raw or b"null")
            if not nul_ok:
                refuse_nul(parsed.model_dump())
            return parsed
        except ValidationError as exc:
            raise Unprocessable(f"invalid body: {problems(exc)}") from exc

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
