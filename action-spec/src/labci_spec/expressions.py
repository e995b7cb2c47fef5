"""GitHub Actions `${{ }}` expressions (a subset): parse, inspect, evaluate, render.

Why labci parses them itself instead of passing text to a shell or to `eval`:
workflow files are untrusted, so before anything runs the planner must know
which contexts an expression reads (`references`, e.g. to refuse
`${{ github.event.pull_request.title }}` inside a shell `run:`), and it must
render `${{ matrix.seed }}` and decide `if:` conditions with no way out of the
language.

Semantics follow GitHub's documentation for expressions: single-quoted strings,
loose equality that coerces mismatched types to numbers, case-insensitive
string comparison, `&&`/`||` returning an operand, and the functions contains,
startsWith, endsWith, format, join, toJSON and fromJSON. The status functions
and hashFiles are recognised but evaluated by the caller (`EvalContext.functions`).
Contexts and their properties are looked up case-insensitively, as on GitHub, so
`Reference.path` lower-cases the root context name; compare the rest with
`str.lower()` too.

Values are plain Python: None, bool, int, float, str, list (or tuple), dict (any
Mapping). Every failure is an `ExpressionError` whose offset points at the
offending token, and sizes are bounded: the source (`exprsyntax`), the nesting
depth, function results, `fromJSON` input and rendered text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from labci_spec.errors import ExpressionError
from labci_spec.exprsyntax import (
    FUNCTIONS,
    Access,
    Call,
    Comparison,
    Constant,
    ContextName,
    Expr,
    Logical,
    Not,
    closing_braces,
    parse,
)

__all__ = [
    "CALLER_FUNCTIONS",
    "Embedded",
    "EvalContext",
    "Expr",
    "Reference",
    "condition_source",
    "evaluate",
    "evaluate_condition",
    "find_expressions",
    "functions_called",
    "is_truthy",
    "parse_expression",
    "references",
    "render",
    "to_text",
]

MAX_RESULT_CHARS = 1024 * 1024
MAX_FROMJSON_CHARS = 64 * 1024
MAX_FROMJSON_DEPTH = 64
CALLER_FUNCTIONS = frozenset({"success", "failure", "always", "cancelled", "hashfiles"})

_PRIMITIVE = frozenset({"null", "boolean", "number", "string"})
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RADIX = re.compile(r"0([xo])([0-9a-fA-F]{1,16})")
_MAX_INT32 = 2**31 - 1
_FORMAT_PIECE = re.compile(r"\{\{|\}\}|\{([0-9]{1,3})\}|[{}]|[^{}]+")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True)
class Reference:
    """A context path an expression reads; it stops at the first computed index.

    `a[matrix.i].b` reads ("a",) and ("matrix", "i"). Literal indexes become text:
    `secrets['X']` is ("secrets", "X"), `a[0]` is ("a", "0").
    """

    path: tuple[str, ...]
    offset: int


@dataclass(frozen=True)
class Embedded:
    """One `${{ ... }}` in a text: `[start, end)` covers it all; `source` is the inside."""

    start: int
    end: int
    source: str
    tree: Expr


@dataclass(frozen=True)
class EvalContext:
    """What an expression can see: contexts by name, caller functions by lower-case name."""

    contexts: Mapping[str, Any] = field(default_factory=dict)
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


def parse_expression(source: str, *, base_offset: int = 0) -> Expr:
    """The tree of `source` (the inside of `${{ }}`); offsets are `base_offset` + position."""
    return parse(source, base_offset)


def find_expressions(text: str) -> list[Embedded]:
    """Every `${{ ... }}` in `text`, parsed, in order; raises on the first bad one.

    A `}}` inside a single-quoted string does not close an expression.
    """
    found: list[Embedded] = []
    position = text.find("${{")
    while position >= 0:
        close = closing_braces(text, position + 3)
        if close < 0:
            raise ExpressionError("'${{' is never closed by '}}' (is a quote left open?)", position)
        source = text[position + 3 : close]
        tree = parse_expression(source, base_offset=position + 3)
        found.append(Embedded(position, close + 2, source, tree))
        position = text.find("${{", close + 2)
    return found


def _children(node: Expr) -> tuple[Expr, ...]:
    """The sub-expressions of `node`, in source order."""
    if isinstance(node, Access):
        return (node.target, *(step for step in node.steps if isinstance(step, Expr)))
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Logical):
        return node.operands
    if isinstance(node, Comparison):
        return (node.first, *(operand for _, operand in node.rest))
    if isinstance(node, Call):
        return node.args
    return ()


def _preorder(tree: Expr) -> Iterator[Expr]:
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(_children(node)))


def references(tree: Expr) -> list[Reference]:
    """The context paths `tree` reads, in source order, root names lower-cased.

    A path covers everything below it: `toJSON(github)` reads ("github",), which
    includes github.event.pull_request.title, so check prefixes both ways.
    """
    found: list[Reference] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        children = _children(node)
        if isinstance(node, ContextName):
            found.append(Reference((node.name.lower(),), node.offset))
        elif isinstance(node, Access) and isinstance(node.target, ContextName):
            found.append(Reference(_path(node.target.name, node.steps), node.target.offset))
            children = children[1:]
        stack.extend(reversed(children))
    return found


def _path(root: str, steps: tuple[str | Expr, ...]) -> tuple[str, ...]:
    path = [root.lower()]
    for step in steps:
        if isinstance(step, str):
            path.append(step)
        elif isinstance(step, Constant) and _kind(step.value) in ("string", "number"):
            path.append(to_text(step.value))
        else:
            break
    return tuple(path)


def functions_called(tree: Expr) -> list[tuple[str, int]]:
    """(lower-case name, offset) of every call in `tree`, in source order."""
    return [(node.name, node.offset) for node in _preorder(tree) if isinstance(node, Call)]


def evaluate(tree: Expr, ctx: EvalContext) -> Any:
    """The value of `tree`; a context that `ctx` lacks reads as null."""
    if isinstance(tree, Constant):
        return tree.value
    if isinstance(tree, ContextName):
        return _member(ctx.contexts, tree.name)
    if isinstance(tree, Access):
        value = evaluate(tree.target, ctx)
        for step in tree.steps:
            value = (
                _member(value, step)
                if isinstance(step, str)
                else _index(value, evaluate(step, ctx))
            )
        return value
    if isinstance(tree, Not):
        return is_truthy(evaluate(tree.operand, ctx)) == (tree.count % 2 == 0)
    if isinstance(tree, Logical):
        stop_when = tree.op == "||"
        for operand in tree.operands:
            value = evaluate(operand, ctx)
            if is_truthy(value) == stop_when:
                break
        return value
    if isinstance(tree, Comparison):
        left = evaluate(tree.first, ctx)
        for op, operand in tree.rest:
            left = _compare(op, left, evaluate(operand, ctx))
        return left
    if isinstance(tree, Call):
        return _call(tree, ctx)
    raise ExpressionError(f"cannot evaluate a {type(tree).__name__} node", tree.offset)


def _member(container: Any, name: str) -> Any:
    """`container.name`: an exact key first, then one differing only in case (as GitHub)."""
    if not isinstance(container, Mapping):
        return None
    if name in container:
        return container[name]
    folded = name.upper()
    for key, value in container.items():
        if isinstance(key, str) and key.upper() == folded:
            return value
    return None


def _index(container: Any, key: Any) -> Any:
    """`container[key]`: objects take a primitive key as text, arrays a number (floored)."""
    if isinstance(container, Mapping):
        return _member(container, to_text(key)) if _kind(key) in _PRIMITIVE else None
    if isinstance(container, list | tuple):
        number = _number(key)
        if math.isnan(number) or not 0 <= number < len(container):
            return None
        return container[int(number)]
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def _number(value: Any) -> float:
    """GitHub's number coercion: null 0, booleans 1/0, strings parsed, others NaN."""
    kind = _kind(value)
    if kind in ("null", "boolean"):
        return 1.0 if value else 0.0
    if kind == "number":
        return _as_float(value)
    return _parse_number(value) if kind == "string" else math.nan


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _parse_number(text: str) -> float:
    """A string as a number like JavaScript's Number(): blank is 0, junk is NaN."""
    text = text.strip()
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    radix = _RADIX.fullmatch(text)
    if radix:
        try:
            value = int(radix[2], 16 if radix[1] == "x" else 8)
        except ValueError:
            return math.nan
        return float(value) if value <= _MAX_INT32 else math.nan
    return {"Infinity": math.inf, "-Infinity": -math.inf}.get(text, math.nan)


def _compare(op: str, left: Any, right: Any) -> bool:
    """A comparison operator with GitHub's coercion: mismatched kinds compare as numbers."""
    if _kind(left) != _kind(right):
        left, right = _number(left), _number(right)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op == "<":
        return _less(left, right)
    if op == ">":
        return _less(right, left)
    if op == "<=":
        return _equal(left, right) or _less(left, right)
    return _equal(left, right) or _less(right, left)


def _equal(left: Any, right: Any) -> bool:
    """Equality of two values of one kind; NaN equals nothing, containers only themselves."""
    kind = _kind(left)
    if kind == "string":
        return bool(left.upper() == right.upper())
    if kind in ("array", "object"):
        return left is right
    return bool(left == right)


def _less(left: Any, right: Any) -> bool:
    kind = _kind(left)
    if kind == "number":
        return bool(left < right)
    if kind == "string":
        return bool(left.upper() < right.upper())
    return kind == "boolean" and not left and bool(right)


def is_truthy(value: Any) -> bool:
    """GitHub truthiness: false, 0, -0, NaN, '' and null are falsy; all else is truthy."""
    kind = _kind(value)
    if kind == "number":
        return not (value == 0 or value != value)
    return bool(value) if kind in ("null", "boolean", "string") else True


def to_text(value: Any) -> str:
    """How a value reads inside text: null is empty, 3.0 is "3", containers are compact JSON."""
    return _text(value, 0)


def _text(value: Any, offset: int) -> str:
    """`to_text`, with a failure to write JSON (a cycle, say) located at `offset`."""
    kind = _kind(value)
    if kind == "null":
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return _number_text(value)
    if kind == "string":
        return str(value)
    return _json(value, indent=None, offset=offset)


def _number_text(value: int | float) -> str:
    if isinstance(value, int) and value.bit_length() <= 1000:
        return str(value)
    value = _as_float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _json(value: Any, *, indent: int | None, offset: int) -> str:
    separators = (",", ": ") if indent else (",", ":")
    try:
        return json.dumps(
            value, indent=indent, separators=separators, ensure_ascii=False, default=_jsonable
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise ExpressionError(f"value cannot be written as JSON: {exc}"[:140], offset) from exc


def _jsonable(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else str(value)


class _Bounded:
    """Collects the pieces of a string result and refuses to grow it past the limit."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.pieces: list[str] = []
        self.size = 0

    def add(self, piece: str, offset: int) -> None:
        self.size += len(piece)
        if self.size > MAX_RESULT_CHARS:
            raise ExpressionError(
                f"{self.what} would be longer than {MAX_RESULT_CHARS} characters", offset
            )
        self.pieces.append(piece)

    def text(self) -> str:
        return "".join(self.pieces)


def _call(node: Call, ctx: EvalContext) -> Any:
    if node.name in CALLER_FUNCTIONS:
        function = ctx.functions.get(node.name)
        if function is None:
            raise ExpressionError(f"{FUNCTIONS[node.name][0]}() is not available here", node.offset)
        return function(*(evaluate(arg, ctx) for arg in node.args))
    builtin = _BUILTINS.get(node.name)
    if builtin is None:
        raise ExpressionError(f"unknown function '{node.name}'", node.offset)
    return builtin(node, [evaluate(arg, ctx) for arg in node.args])


def _contains(node: Call, args: list[Any]) -> bool:
    search, item = args
    if isinstance(search, list | tuple):
        return any(_compare("==", element, item) for element in search)
    if _kind(search) in _PRIMITIVE and _kind(item) in _PRIMITIVE:
        return to_text(item).upper() in to_text(search).upper()
    return False


def _starts_with(node: Call, args: list[Any]) -> bool:
    return _affix(args, str.startswith)


def _ends_with(node: Call, args: list[Any]) -> bool:
    return _affix(args, str.endswith)


def _affix(args: list[Any], test: Callable[[str, str], bool]) -> bool:
    """startsWith/endsWith: primitives compared as text ignoring case, anything else false."""
    text, affix = args
    if _kind(text) in _PRIMITIVE and _kind(affix) in _PRIMITIVE:
        return test(to_text(text).upper(), to_text(affix).upper())
    return False


def _format(node: Call, args: list[Any]) -> str:
    """`{N}` is argument N; `{{` and `}}` are literal braces; anything else is an error."""
    template = _text(args[0], node.offset)
    where = node.args[0].offset
    texts: dict[int, str] = {}
    result = _Bounded("format() result")
    for match in _FORMAT_PIECE.finditer(template):
        piece = match.group()
        if piece in ("{{", "}}"):
            piece = piece[0]
        elif match[1] is not None:
            number = int(match[1])
            if number >= len(args) - 1:
                raise ExpressionError(
                    f"format() placeholder {piece} has no argument; "
                    f"{len(args) - 1} given after the format string",
                    where,
                )
            if number not in texts:
                texts[number] = _text(args[number + 1], node.offset)
            piece = texts[number]
        elif piece in ("{", "}"):
            raise ExpressionError(
                f"format() string has a stray '{piece}' at position {match.start()}; "
                f"use {{0}}, {{1}}... and write '{piece * 2}' for a literal brace",
                where,
            )
        result.add(piece, node.offset)
    return result.text()


def _join(node: Call, args: list[Any]) -> str:
    items = args[0]
    if _kind(items) in _PRIMITIVE:
        return to_text(items)
    if not isinstance(items, list | tuple):
        return ""
    separator = ","
    if len(args) > 1 and _kind(args[1]) in _PRIMITIVE:
        separator = to_text(args[1])
    result = _Bounded("join() result")
    for position, item in enumerate(items):
        if position:
            result.add(separator, node.offset)
        result.add(_text(item, node.offset), node.offset)
    return result.text()


def _to_json(node: Call, args: list[Any]) -> str:
    text = _json(args[0], indent=2, offset=node.offset)
    _Bounded("toJSON() result").add(text, node.offset)
    return text


def _from_json(node: Call, args: list[Any]) -> Any:
    text = _text(args[0], node.offset)
    if len(text) > MAX_FROMJSON_CHARS:
        raise ExpressionError(
            f"fromJSON() input is {len(text)} characters; the limit is {MAX_FROMJSON_CHARS}",
            node.offset,
        )
    brackets = _JSON_BRACKET.findall(_JSON_STRING.sub("", text))
    if max(accumulate((1 if b in "[{" else -1 for b in brackets), initial=0)) > MAX_FROMJSON_DEPTH:
        raise ExpressionError(
            f"fromJSON() input nests deeper than {MAX_FROMJSON_DEPTH} levels", node.offset
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"fromJSON() input is not valid JSON: {exc.msg} at position {exc.pos}"
        raise ExpressionError(message, node.offset) from exc
    except (ValueError, RecursionError) as exc:  # e.g. Python's limit on integer digits
        message = f"fromJSON() input cannot be read: {str(exc).split(';')[0]}"
        raise ExpressionError(message[:140], node.offset) from exc


_BUILTINS: dict[str, Callable[[Call, list[Any]], Any]] = {
    "contains": _contains,
    "startswith": _starts_with,
    "endswith": _ends_with,
    "format": _format,
    "join": _join,
    "tojson": _to_json,
    "fromjson": _from_json,
}


def render(text: str, ctx: EvalContext, *, only: Collection[str] | None = None) -> str:
    """`text` with each `${{ }}` replaced by its value as text.

    With `only`, an expression is replaced only when every context it reads is in
    `only` and it calls no caller function; the rest stay verbatim, so a planner
    can fill in `matrix` now and leave `steps` or `success()` to the runner.
    """
    allowed = None if only is None else frozenset(name.lower() for name in only)
    result = _Bounded("rendered text")
    position = 0
    for embedded in find_expressions(text):
        result.add(text[position : embedded.start], embedded.start)
        if allowed is None or _knowable(embedded.tree, allowed):
            value = _text(evaluate(embedded.tree, ctx), embedded.start)
        else:
            value = text[embedded.start : embedded.end]
        result.add(value, embedded.start)
        position = embedded.end
    if position == 0:
        return text
    result.add(text[position:], position)
    return result.text()


def _knowable(tree: Expr, allowed: frozenset[str]) -> bool:
    if any(name in CALLER_FUNCTIONS for name, _ in functions_called(tree)):
        return False
    return all(reference.path[0] in allowed for reference in references(tree))


def condition_source(text: str) -> tuple[str, int]:
    """The expression of an `if:` field, which GitHub takes with or without `${{ }}`.

    Returns (inner source, its offset in `text`) when the stripped text is exactly
    one `${{ ... }}`, else (`text`, 0).
    """
    stripped = text.strip()
    if stripped.startswith("${{") and stripped.endswith("}}"):
        if closing_braces(stripped, 3) == len(stripped) - 2:
            lead = len(text) - len(text.lstrip())
            return stripped[3:-2], lead + 3
    return text, 0


def evaluate_condition(text: str, ctx: EvalContext) -> bool:
    """Whether an `if:` condition holds.

    GitHub's implicit `success() &&` (when no status function is called) is the caller's job.
    """
    source, offset = condition_source(text)
    return is_truthy(evaluate(parse_expression(source, base_offset=offset), ctx))
