"""Parse a job's metrics file: a JSON object of finite numbers, nested objects flattened.

`{"loss": 0.3, "eval": {"acc": 0.9}}` becomes `{"loss": 0.3, "eval.acc": 0.9}`.
The file comes from the experiment, so it is treated as hostile: size, depth
and key count are bounded before and while parsing, and every rejection is a
`MetricsError` whose message names the metric concerned.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from labci_spec.errors import MetricsError

MAX_METRICS_BYTES = 1024 * 1024
MAX_METRICS_DEPTH = 32
MAX_METRICS = 1000
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class _Rejected:
    """Stands in for a JSON number we refuse, so the error can name its metric."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _fail(message: str) -> MetricsError:
    return MetricsError(f"metrics invalid: {message}")


def parse_metrics_json(text: str | bytes) -> dict[str, float]:
    """The metrics in `text` as flat dotted names to finite floats; raises MetricsError."""
    if len(text) > MAX_METRICS_BYTES:
        raise _fail(f"file is larger than {MAX_METRICS_BYTES} bytes")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise _fail(f"file is not valid UTF-8 (at offset {exc.start})") from exc
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_METRICS_BYTES:
        raise _fail(f"file is larger than {MAX_METRICS_BYTES} bytes")
    if _bracket_depth(text) > MAX_METRICS_DEPTH:
        raise _fail(f"nesting deeper than {MAX_METRICS_DEPTH} levels")
    try:
        data = json.loads(
            text,
            parse_float=_number,
            parse_int=_number,
            parse_constant=lambda name: _Rejected(f"is {name}, not a finite number"),
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, RecursionError) as exc:
        raise _fail(f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _fail(f"expected a JSON object, got {_kind(data)}")
    metrics: dict[str, float] = {}
    _flatten(data, "", metrics)
    return metrics


def _bracket_depth(text: str) -> int:
    """The deepest bracket nesting in `text`, ignoring brackets inside strings."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    steps = (1 if bracket in "[{" else -1 for bracket in brackets)
    return max(accumulate(steps, initial=0))


def _number(literal: str) -> float | _Rejected:
    value = float(literal)
    if not math.isfinite(value):
        return _Rejected(f"is too large ({literal[:20]}...)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _fail(f"key '{key}' appears twice in one object")
        result[key] = value
    return result


def _flatten(data: dict[str, Any], prefix: str, into: dict[str, float]) -> None:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if not key:
            where = f" under '{prefix[:-1]}'" if prefix else ""
            raise _fail(f"empty metric name{where}")
        if isinstance(value, dict):
            _flatten(value, f"{name}.", into)
            continue
        if isinstance(value, _Rejected):
            raise _fail(f"'{name}' {value.reason}")
        if not isinstance(value, float):
            raise _fail(f"'{name}' is not a number (got {_kind(value)})")
        if name in into:
            raise _fail(f"'{name}' is defined twice")
        if len(into) >= MAX_METRICS:
            raise _fail(f"more than {MAX_METRICS} metrics")
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
    return "an object" if isinstance(value, dict) else type(value).__name__
