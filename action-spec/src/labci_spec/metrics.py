"""The metrics an experiment reports: files it writes, and `::metric` lines it prints.

A metrics file is parsed according to its suffix (`metrics_format`): JSON, YAML or
CSV, each described in `labci_spec.metrics_formats`. A step can also print
`::metric name=accuracy::0.912` on its stdout, in the form of GitHub's workflow
commands, which `parse_metric_line` recognises. Both yield metric names mapped to
finite floats, and every rejection is a `MetricsError` whose message starts with
"metrics invalid: ", ready to be shown on a pull request.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from labci_spec.errors import MetricsError
from labci_spec.metrics_formats import (
    MAX_METRICS,
    MAX_METRICS_BYTES,
    MAX_METRICS_DEPTH,
    metrics_failure,
    parse_metrics_csv,
    parse_metrics_json,
    parse_metrics_yaml,
    read_decimal,
)

__all__ = [
    "MAX_METRICS",
    "MAX_METRICS_BYTES",
    "MAX_METRICS_DEPTH",
    "METRICS_SUFFIXES",
    "METRIC_NAME_PATTERN",
    "metrics_format",
    "parse_metric_line",
    "parse_metrics",
    "parse_metrics_csv",
    "parse_metrics_json",
    "parse_metrics_yaml",
]

METRICS_SUFFIXES: tuple[str, ...] = (".json", ".yaml", ".yml", ".csv")
# Safe in a URL path, a file name and a markdown table, and long enough for `eval/top5.acc`.
METRIC_NAME_PATTERN: str = r"^[A-Za-z0-9_./-]{1,128}$"
_FORMAT_BY_SUFFIX = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}
_PARSERS: dict[str, Callable[[str | bytes], dict[str, float]]] = {
    "json": parse_metrics_json,
    "yaml": parse_metrics_yaml,
    "csv": parse_metrics_csv,
}
_COMMAND = "::metric"
_SHOWN_LINE_CHARS = 80


def metrics_format(file: str) -> str | None:
    """The format `file` is read as, by its suffix in any case: json, yaml, csv, or None."""
    lowered = file.lower()
    for suffix, fmt in _FORMAT_BY_SUFFIX.items():
        if lowered.endswith(suffix):
            return fmt
    return None


def parse_metrics(file: str, data: str | bytes) -> dict[str, float]:
    """The metrics in `data`, read as the format `file`'s suffix names; raises MetricsError."""
    fmt = metrics_format(file)
    if fmt is None:
        supported = ", ".join(METRICS_SUFFIXES)
        raise metrics_failure(f"{file}: unsupported file type (use {supported})")
    return _PARSERS[fmt](data)


def parse_metric_line(line: str) -> tuple[str, float] | None:
    """`(name, value)` for a `::metric name=<name>::<value>` line, None for any other line.

    As with GitHub's workflow commands, a command starts at column 0, so indented text
    or a line quoting one is never taken for a metric. A line that is a `::metric`
    command but malformed raises MetricsError quoting the line, because a metric the
    experiment meant to report must not go missing silently.
    """
    if not line.startswith(_COMMAND):
        return None
    rest = line[len(_COMMAND) :]
    if rest and not rest.startswith("::") and not rest[0].isspace():
        return None  # another command, such as `::metrics-summary`
    parameters, separator, value = rest.partition("::")
    if not separator:
        raise _bad_line(line, "expected ::metric name=<name>::<value>")
    name = _metric_name(line, parameters)
    try:
        return name, read_decimal(value)
    except ValueError as exc:
        raise _bad_line(line, f"'{name}' {exc}") from None


def _metric_name(line: str, parameters: str) -> str:
    name: str | None = None
    for parameter in filter(None, (part.strip() for part in parameters.split(","))):
        key, equals, value = parameter.partition("=")
        if key.strip() != "name" or not equals:
            shown = _shortened(key.strip())
            raise _bad_line(line, f"unknown parameter '{shown}' (only name= is allowed)")
        if name is not None:
            raise _bad_line(line, "name= is given twice")
        name = value.strip()
    if not name:
        raise _bad_line(line, "missing name=")
    if re.fullmatch(METRIC_NAME_PATTERN, name) is None:
        allowed = "1-128 letters, digits, _ - . /"
        shown = _shortened(name)
        raise _bad_line(line, f"invalid metric name {shown!r} (allowed: {allowed})")
    return name


def _shortened(text: str, limit: int = 20) -> str:
    """`text` cut to `limit` characters with a visible "…": the runner's redaction masks a
    secret's prefix left before such a mark, never one cut silently."""
    return text if len(text) <= limit else text[:limit] + "…"


def _bad_line(line: str, problem: str) -> MetricsError:
    shown = line.rstrip("\r\n")
    if len(shown) > _SHOWN_LINE_CHARS:
        shown = shown[: _SHOWN_LINE_CHARS - 3] + "..."
    return metrics_failure(f"{problem} in {shown!r}")
