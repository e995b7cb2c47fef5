"""How each metrics file format becomes flat metric names mapped to finite floats.

JSON and YAML files hold a mapping of numbers, nested mappings flattened to dotted
names: `{"loss": 0.3, "eval": {"acc": 0.9}}` becomes `{"loss": 0.3, "eval.acc": 0.9}`.
A CSV file is a table whose header names the metrics and whose *last* row holds the
values, so a training log written one row per epoch reports its final epoch.

The files come from the experiment, so they are treated as hostile: the size is
checked before parsing, depth and counts while parsing (a deeply nested or huge
document never reaches Python's recursion limit or fills memory), and every
rejection is a `MetricsError` starting with "metrics invalid: " that names the
metric, column or line concerned. `labci_spec.metrics` picks a parser by suffix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from itertools import accumulate
from typing import Any

import yaml
from yaml.events import AliasEvent, Event, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode

from labci_spec.errors import MetricsError

MAX_METRICS_BYTES = 1024 * 1024
MAX_METRICS_DEPTH = 32
MAX_METRICS = 1000
# Enough keys for MAX_METRICS metrics each under its own MAX_METRICS_DEPTH-deep path.
MAX_YAML_KEYS = MAX_METRICS * MAX_METRICS_DEPTH
_SHOWN_CHARS = 20
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[-+]?(?:nan|inf|infinity)", re.IGNORECASE)


class _Rejected:
    """Stands in for a number we refuse, so the error can name its metric."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def metrics_failure(message: str) -> MetricsError:
    """The error for `message`, with the prefix every metrics error carries."""
    return MetricsError(f"metrics invalid: {message}")


def decode_metrics(text: str | bytes) -> str:
    """`text` as a str, refused before any parsing if it is too large or not UTF-8."""
    too_large = f"file is larger than {MAX_METRICS_BYTES} bytes"
    if len(text) > MAX_METRICS_BYTES:  # a cheap check first: 10 MiB is refused at once
        raise metrics_failure(too_large)
    if isinstance(text, bytes | bytearray):
        try:
            return bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise metrics_failure(f"file is not valid UTF-8 (at offset {exc.start})") from exc
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METRICS_BYTES:
        raise metrics_failure(too_large)
    return text


def read_decimal(text: str) -> float:
    """The finite value of a plain decimal literal such as `0.912`, `-3` or `1e-4`.

    Raises ValueError whose message is the reason, worded to follow a metric's name
    ("is not a number (got 'abc')"). Stricter than `float()`: no `nan`, `inf`,
    `1_000` or non-ASCII digits, which a person would not mean as a measurement.
    """
    literal = text.strip()
    if not literal:
        raise ValueError("has no value")
    if _DECIMAL.fullmatch(literal) is None:
        if _NOT_FINITE.fullmatch(literal):
            raise ValueError(f"is {literal}, not a finite number")
        raise ValueError(f"is not a number (got {_show(literal)})")
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"is too large ({literal[:_SHOWN_CHARS]}...)")
    return value


def _show(text: str) -> str:
    """`text` quoted, escaped and cut, safe to put in a message for a person."""
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return repr(text)


# --- JSON ---------------------------------------------------------------------------


def parse_metrics_json(text: str | bytes) -> dict[str, float]:
    """The metrics in JSON `text` as flat dotted names to finite floats; raises MetricsError."""
    decoded = decode_metrics(text)
    if _bracket_depth(decoded) > MAX_METRICS_DEPTH:
        raise metrics_failure(f"nesting deeper than {MAX_METRICS_DEPTH} levels")
    try:
        data = json.loads(
            decoded,
            parse_float=_json_number,
            parse_int=_json_number,
            parse_constant=lambda name: _Rejected(f"is {name}, not a finite number"),
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as exc:
        raise metrics_failure(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise metrics_failure(f"expected a JSON object, got {_kind(data)}")
    return _flat_metrics(data)


def _bracket_depth(text: str) -> int:
    """The deepest bracket nesting in `text`, ignoring brackets inside strings."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    steps = (1 if bracket in "[{" else -1 for bracket in brackets)
    return max(accumulate(steps, initial=0))


def _json_number(literal: str) -> float | _Rejected:
    value = float(literal)
    if not math.isfinite(value):
        return _Rejected(f"is too large ({literal[:_SHOWN_CHARS]}...)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise metrics_failure(f"key '{key}' appears twice in one object")
        result[key] = value
    return result


# --- shared by JSON and YAML: nested mappings to dotted names -----------------------


def _flat_metrics(data: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    _flatten(data, "", metrics)
    return metrics


def _flatten(data: dict[str, Any], prefix: str, into: dict[str, float]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if not key:
            where = f" under '{prefix[:-1]}'" if prefix else ""
            raise metrics_failure(f"empty metric name{where}")
        if isinstance(value, dict):
            _flatten(value, f"{name}.", into)
            continue
        if isinstance(value, _Rejected):
            raise metrics_failure(f"'{name}' {value.reason}")
        if not isinstance(value, float):
            raise metrics_failure(f"'{name}' is not a number (got {_kind(value)})")
        if name in into:
            raise metrics_failure(f"'{name}' is defined twice")
        if len(into) >= MAX_METRICS:
            raise metrics_failure(f"more than {MAX_METRICS} metrics")
        into[name] = value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, _Rejected):
        return "a number that is not finite"
    return "an object" if isinstance(value, dict) else type(value).__name__


# --- YAML ---------------------------------------------------------------------------

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution): unlike
# PyYAML's YAML 1.1 rules, `yes`/`on` stay strings and `1_000`/`1:30` are not numbers.
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")


class _MetricsComposer(yaml.SafeLoader):
    """SafeLoader's composer, bounded, resolving plain scalars by the YAML 1.2 core schema.

    It only composes: the result is a tree of nodes, never Python objects, and anchors
    and aliases are refused outright, so an alias bomb cannot expand. Work is bounded
    while composing, before the tree grows: mappings nest at most MAX_METRICS_DEPTH
    deep, hold at most MAX_METRICS values and MAX_YAML_KEYS keys in all, and a list
    (never a valid metric) is refused as soon as it starts, not read to its end.
    """

    yaml_implicit_resolvers: dict[Any, Any] = {}  # our own, filled below: not SafeLoader's

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.names: list[str] = []  # keys of the mappings being composed, outermost first
        self.keys = 0
        self.leaves = 0  # values that are not mappings: each is a metric, or an error

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _refusal(event, "YAML anchors and aliases are not supported")
        composing_key = isinstance(parent, MappingNode) and index is None
        if composing_key:
            self.keys += 1
            if self.keys > MAX_YAML_KEYS:
                raise _refusal(event, f"more than {MAX_YAML_KEYS} keys")
            if not isinstance(event, ScalarEvent):
                raise _refusal(event, "a mapping key must be a plain name")
            return super().compose_node(parent, index)
        names = self.names if index is None else [*self.names, str(index.value)]
        if isinstance(event, SequenceStartEvent):
            if names:
                raise metrics_failure(f"'{'.'.join(names)}' is not a number (got a list)")
            raise metrics_failure("expected a YAML mapping, got a list")
        if not isinstance(event, MappingStartEvent):
            self.leaves += 1
            if self.leaves > MAX_METRICS:
                raise metrics_failure(f"more than {MAX_METRICS} metrics")
        elif len(names) >= MAX_METRICS_DEPTH:
            raise metrics_failure(f"nesting deeper than {MAX_METRICS_DEPTH} levels")
        outer, self.names = self.names, names
        try:
            return super().compose_node(parent, index)
        finally:
            self.names = outer


for _tag, _pattern, _first in (
    (_BOOL_TAG, _CORE_BOOL, "tTfF"),
    (_INT_TAG, _CORE_INT, "-+0123456789"),
    (_FLOAT_TAG, _CORE_FLOAT, "-+0123456789."),
    (_NULL_TAG, _CORE_NULL, ["~", "n", "N", ""]),
):
    _MetricsComposer.add_implicit_resolver(_tag, _pattern, list(_first))


def _refusal(event: Event, message: str) -> MetricsError:
    mark = event.start_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return metrics_failure(f"{message}{where}")


def parse_metrics_yaml(text: str | bytes) -> dict[str, float]:
    """The metrics in YAML `text`, with the same meaning and limits as JSON metrics."""
    root = _compose_yaml(decode_metrics(text))
    if not isinstance(root, MappingNode):
        got = "an empty file" if root is None else _kind(_yaml_value(root))
        raise metrics_failure(f"expected a YAML mapping, got {got}")
    return _flat_metrics(_yaml_value(root))


def _compose_yaml(text: str) -> Node | None:
    composer: _MetricsComposer | None = None
    try:
        composer = _MetricsComposer(text)  # checks for unprintable characters already
        return composer.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = ", ".join(part for part in (exc.context, exc.problem) if part)
        raise metrics_failure(f"not valid YAML: {problem or 'not a document'}{where}") from exc
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else 0
        message = f"character U+{code:04X} is not allowed (at offset {exc.position})"
        raise metrics_failure(f"not valid YAML: {message}") from exc
    except yaml.YAMLError as exc:
        raise metrics_failure(f"not valid YAML: {exc}") from exc
    finally:
        if composer is not None:
            composer.dispose()


def _yaml_value(node: Node) -> Any:
    """A node as the data JSON would give: dicts, floats, `_Rejected`, or what to name."""
    if not isinstance(node, MappingNode):
        return _yaml_scalar(node) if isinstance(node, ScalarNode) else []
    result: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key in result:
            line = key_node.start_mark.line + 1
            raise metrics_failure(f"key '{key}' appears twice in one mapping (line {line})")
        result[key] = _yaml_value(value_node)
    return result


def _yaml_scalar(node: ScalarNode) -> Any:
    value, tag = str(node.value), node.tag
    if tag == _INT_TAG and _CORE_INT.match(value):
        return _yaml_int(value)
    if tag == _FLOAT_TAG and _CORE_FLOAT.match(value):
        if value.lower().endswith((".nan", ".inf")):
            return _Rejected(f"is {value}, not a finite number")
        return _json_number(value)
    if tag == _BOOL_TAG:
        return value.lower() == "true"
    if tag == _NULL_TAG:
        return None
    if tag == _STR_TAG:
        return value
    shown = tag.replace("tag:yaml.org,2002:", "!!")[:_SHOWN_CHARS]
    return _Rejected(f"is not a number (got a value tagged {shown})")


def _yaml_int(value: str) -> float | _Rejected:
    base = {"0o": 8, "0x": 16}.get(value[:2])
    if base is None:  # decimal: float() reads any length, int() refuses > 4300 digits
        return _json_number(value)
    try:
        return float(int(value[2:], base))
    except OverflowError:
        return _Rejected(f"is too large ({value[:_SHOWN_CHARS]}...)")


# --- CSV ----------------------------------------------------------------------------


def parse_metrics_csv(text: str | bytes) -> dict[str, float]:
    """The metrics in a CSV table: the header names them, the last row holds their values."""
    reader = csv.reader(io.StringIO(decode_metrics(text), newline=""), strict=True)
    header: list[str] | None = None
    last: list[str] | None = None
    row_number = last_number = 0
    try:
        for row_number, row in enumerate(reader, start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line, such as the one after the last row
            if header is None:
                header = _csv_header(row)
            elif len(row) != len(header):
                count = f"{len(row)} cell{'s' if len(row) != 1 else ''}"
                raise metrics_failure(f"row {row_number} has {count}, expected {len(header)}")
            else:
                last, last_number = row, row_number
    except csv.Error as exc:
        raise metrics_failure(f"not valid CSV: {exc} (row {row_number + 1})") from exc
    if header is None or last is None:
        raise metrics_failure("expected a header row naming the metrics and a row of values")
    metrics: dict[str, float] = {}
    for name, cell in zip(header, last, strict=True):
        try:
            metrics[name] = read_decimal(cell)
        except ValueError as exc:
            raise metrics_failure(f"'{name}' in row {last_number} {exc}") from None
    return metrics


def _csv_header(row: list[str]) -> list[str]:
    if len(row) > MAX_METRICS:
        raise metrics_failure(f"more than {MAX_METRICS} metrics")
    names = [cell.strip() for cell in row]
    seen: set[str] = set()
    for column, name in enumerate(names, start=1):
        if not name:
            raise metrics_failure(f"column {column} of the header has no name")
        if name in seen:
            raise metrics_failure(f"column '{name}' appears twice in the header")
        seen.add(name)
    return names
