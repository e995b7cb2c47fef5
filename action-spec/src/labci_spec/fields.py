"""Field types shared by the models: what a YAML author may write, and what labci keeps.

Each type validates the forgiving surface form (a string where a list is allowed, `16G`
for a size, `2%` for a tolerance) into one canonical value, and tells the JSON Schema
generator about the surface form, so that editors accept exactly what the loader accepts.
The canonical value validates again unchanged: models travel to runners as JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
MAX_TEXT_CHARS = 64 * 1024
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MAX_SIZE_BYTES = 1024**6  # 1 EiB: far beyond any machine, well inside a 64-bit column
_SHOWN_CHARS = 40
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]([iI]?[bB]?))?\s*$"


class Frozen(BaseModel):
    """Base of every model: immutable, unknown keys refused, YAML spellings (`runs-on`) only."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_alias=True, validate_by_name=False
    )


def scalar_text(value: Any) -> Any:
    """YAML numbers and booleans where text is expected keep their text: `name: 1.0` is "1.0"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


class AsText:
    """`scalar_text` as a validator, and in the JSON Schema: a number or boolean is text too.

    Without the schema half, editors would flag `env: {SEED: 0}`, which the loader accepts.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(scalar_text, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        if result.get("type") == "string":
            result["type"] = ["string", "number", "boolean"]
        return result


def _nonblank(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


def _not_bool(value: Any) -> Any:
    """Pydantic reads `true` as 1.0 where a number is expected; YAML authors mean no number."""
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "Input should be a valid number")
    return value


Text = Annotated[str, AsText(), Field(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, BeforeValidator(_nonblank), AsText()]
# `true`, `"yes"` and `1` are not booleans, and `true` or `"30"` not integers: pydantic's
# lax mode would accept them, the JSON Schema (and GitHub) would not.
Flag = Annotated[bool, Strict()]
Count = Annotated[int, Strict()]
# Constraints go before it (`Annotated[float, Field(gt=0), NOT_BOOL]`): after a validator
# function pydantic leaves them out of the JSON Schema's vocabulary (`gt` for `exclusiveMinimum`).
NOT_BOOL = BeforeValidator(_not_bool)
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Env = dict[EnvName, Text]


def one_or_many(value: Any) -> Any:
    """`runs-on: gpu` means `runs-on: [gpu]`."""
    if isinstance(value, list):
        return value
    return [value]


def refusing(problem: Callable[[str], str | None]) -> Callable[[str], str]:
    """An after-validator from a `..._problem(value) -> reason | None` function."""

    def check(value: str) -> str:
        reason = problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value

    return check


class OneOrManySchema:
    """JSON Schema: an item, or a list of items."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        many = handler(core_schema)
        return {"anyOf": [many["items"], many]}


Names = Annotated[list[Name], BeforeValidator(one_or_many), Field(min_length=1), OneOrManySchema()]


class MappingSpelling:
    """Text that may also be written as a mapping: `repeats: seed`, or
    `repeats: {axis: seed, max: 20}`.

    A mapping is validated by `model` and stands for its field `key`; a mapping that does
    not validate gets its errors located inside it (`metrics.repeats.max`), and anything
    else is "expected <expected>". Editors are offered both spellings, and
    `labci_spec.messages` hints with `model`'s keys. What the mapping holds besides `key`
    is for the enclosing model to pick up (a `mode="before"` validator there), since a
    field's validator cannot set another field.
    """

    def __init__(self, model: type[BaseModel], key: str, *, expected: str) -> None:
        self.model = model
        self.key = key
        self.expected = expected

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._picked, handler(source))

    def _picked(self, value: Any) -> Any:
        if isinstance(value, dict):
            return getattr(self.model.model_validate(value), self.key)
        if not isinstance(value, str):
            message = "expected {expected}"
            raise PydanticCustomError("spelling_type", message, {"expected": self.expected})
        return value

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), handler(self.model.__pydantic_core_schema__)]}


def parse_size(value: Any) -> Any:
    """`16G`, `512M`, `1.5GiB` or a number of bytes; K/M/G/T are powers of 1024, as in Docker."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 16G, 512M or a number of bytes")
    if isinstance(value, int):
        return _bounded_size(value, str(value))
    text = str(value)
    shown = shown_text(text)
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"expected a size such as 16G, 512M or a number of bytes, got {shown}")
    number, unit, suffix = match.groups()
    if suffix and not unit and suffix.lower() != "b":
        raise ValueError(f"unknown size unit in {shown}")
    if not unit and "." in number:
        raise ValueError(f"{shown} is a fraction of a byte; give a unit, e.g. 1.5G")
    amount = float(number) * _SIZE_UNITS[unit.lower()]
    if not math.isfinite(amount):
        raise ValueError(f"size {shown} is too large (at most {format_size(MAX_SIZE_BYTES)})")
    return _bounded_size(int(amount), shown)


def shown_text(text: str) -> str:
    """`text` quoted for a message, cut to 40 characters: a value may be 64 KiB long."""
    return repr(text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "...")


def _bounded_size(size_bytes: int, shown: str) -> int:
    if size_bytes > MAX_SIZE_BYTES:
        raise ValueError(f"size {shown} is too large (at most {format_size(MAX_SIZE_BYTES)})")
    return size_bytes


SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": SIZE_PATTERN},
    ],
    "description": "bytes, or a size such as 16G or 512M (K, M, G, T are powers of 1024)",
}


class SurfaceSchema:
    """JSON Schema replaced by a fixed surface description (sizes, tolerances)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0), SurfaceSchema(SIZE_SCHEMA)]


def format_size(size_bytes: int) -> str:
    """1073741824 → '1 GiB'; for messages and summaries."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"
