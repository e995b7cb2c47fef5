"""Turn a pydantic validation error into a located message that teaches.

pydantic says "Extra inputs are not permitted" at ('jobs', 'train', 'runs_on'); a
workflow author needs "jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)" on
the line of that key. The location is found through the places `to_data` recorded; the
wording comes from the error type, the value as written, and the model at that location.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails
from yaml.nodes import Node, ScalarNode, SequenceNode

from labci_spec.errors import SpecError
from labci_spec.fields import MappingSpelling
from labci_spec.model import Workflow
from labci_spec.triggers import EVENTS
from labci_spec.yamlnodes import Data, Location, describe

# GitHub Actions keys that labci does not have, and what to do instead.
UNSUPPORTED_KEYS = {
    "uses": "labci steps run shell commands; put the commands in `run:`",
    "with": "labci steps run shell commands; pass values through `env:`",
    "services": "start what the experiment needs from a step, or bake it into the image",
    "permissions": "labci jobs never receive a forge token",
    "outputs": "jobs hand data on through metrics and artifacts",
    "environment": "not supported by labci",
    "run-name": "runs are named after the event",
    "id": "steps are numbered; give them a `name:`",
}
_PATTERN_HINTS = {
    "env": "invalid variable name '{key}' (use letters, digits and '_', not starting with a digit)",
    "jobs": "invalid job id '{key}' (use letters, digits, '_' and '-', starting with a letter or '_')",
    "inputs": "invalid input name '{key}' (use letters, digits, '_' and '-', starting with a letter or '_')",
    "compare": "invalid metric name '{key}' (use letters, digits, '_', '-', '.' and '/')",
    "matrix": "invalid axis name '{key}' (use letters, digits, '_' and '-', starting with a letter or '_')",
}
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "int_parsing_size": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def describe_validation_error(path: str, data: Data, error: ErrorDetails) -> SpecError | None:
    """The located message for one error; None for errors that only echo another one."""
    loc: Location = tuple(error["loc"])
    kind = error["type"]
    if len(loc) == 3 and loc[0] == "jobs" and loc[2] == "id":
        return None  # derived from the job's key, whose own error says what is wrong
    if loc and loc[-1] == "[key]":
        return _key_error(path, data, loc[:-1], error)
    if kind == "missing":
        found, place = data.find(loc[:-1])
        node = place.key or place.value
        return _located(path, node, found, f"missing required key '{loc[-1]}'")
    found, place = data.find(loc)
    if kind == "extra_forbidden":
        # The key itself when the YAML has it; else (`on: pull_requests`) the value naming
        # it, or in a list (`on: [push, pull-request]`) the item naming it.
        message = _unknown_key(str(loc[-1]), loc[:-1])
        if found == loc:
            return _located(path, place.key or place.value, loc[:-1], message)
        if isinstance(place.value, SequenceNode):
            for index, item in enumerate(place.value.value):
                if isinstance(item, ScalarNode) and str(item.value) == str(loc[-1]):
                    return _located(path, item, (*found, index), message)
        return _located(path, place.value, loc[:-1], message)
    return _located(path, place.value, found, _wording(kind, error, place.value))


def _located(path: str, node: Node, loc: Location, message: str) -> SpecError:
    where = dotted(loc)
    text = f"{where}: {message}" if where else message
    mark = node.start_mark
    return SpecError(path, mark.line + 1, mark.column + 1, text)


def dotted(loc: Location) -> str:
    """('jobs', 'train', 'steps', 0, 'run') → 'jobs.train.steps[0].run'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _wording(kind: str, error: ErrorDetails, node: Node) -> str:
    got = describe(node)
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind in ("literal_error", "spelling_type"):
        return f"expected {ctx.get('expected', 'one of the allowed values')}, got {got}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": "at least", "greater_than": "more than"}.get(
            kind, "at most" if kind == "less_than_equal" else "less than"
        )
        limit = next(iter(ctx.values()), "")
        return f"must be {bound} {limit}, got {got}"
    # A validator in front of a string's length check makes pydantic say "items".
    unit = (
        "characters" if kind.startswith("string_") or isinstance(error["input"], str) else "items"
    )
    if kind in ("too_short", "string_too_short"):
        if ctx.get("min_length") == 1:
            return "must not be empty"
        return f"needs at least {ctx.get('min_length')} {unit}, got {ctx.get('actual_length')}"
    if kind in ("too_long", "string_too_long"):
        return f"is too long: at most {ctx.get('max_length')} {unit} allowed"
    if kind == "string_pattern_mismatch":
        return f"{got} is not allowed here (expected the pattern {ctx.get('pattern')})"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _key_error(path: str, data: Data, loc: Location, error: ErrorDetails) -> SpecError:
    found, place = data.find(loc)
    key = str(loc[-1])
    container = str(found[-2]) if len(found) >= 2 else ""
    hint = _PATTERN_HINTS.get(container)
    message = hint.format(key=key) if hint else f"invalid key '{key}': {error['msg']}"
    return _located(path, place.key or place.value, found[:-1], message)


def _unknown_key(key: str, parent: Location) -> str:
    if parent == ("on",):
        return f"unknown event '{key}'{hint_for(key, EVENTS)}"
    if key in UNSUPPORTED_KEYS:
        return f"'{key}' is not supported: {UNSUPPORTED_KEYS[key]}"
    known = known_keys(parent)
    return f"unknown key '{key}'{hint_for(key, known)}"


def hint_for(word: str, known: tuple[str, ...] | list[str]) -> str:
    if not known:
        return ""
    close = difflib.get_close_matches(word, known, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (expected one of: {', '.join(known)})"


def known_keys(loc: Location) -> tuple[str, ...]:
    """The YAML keys the model at `loc` accepts (the model found by walking the types)."""
    model = _model_at(Workflow, loc)
    if model is None:
        return ()
    if model.__name__ == "Matrix":
        return ("include", "exclude")
    # Fields labci fills in itself (a job's `id`) are not keys a file may hold.
    return tuple(
        info.alias or name
        for name, info in model.model_fields.items()
        if not any(isinstance(m, SkipJsonSchema) for m in info.metadata)
    )


def _model_at(root: type[BaseModel], loc: Location) -> type[BaseModel] | None:
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for n, f in current.model_fields.items() if (f.alias or n) == part), None
            )
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `X | None` down to X; a value that may be spelled as a
    mapping (`MappingSpelling`) is that mapping's model."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            spelling = next((a for a in args[1:] if isinstance(a, MappingSpelling)), None)
            if spelling is not None:
                return spelling.model
            tp = args[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp
