"""Metrics parsing (JSON, YAML, CSV, `::metric` lines): accepted shapes, exact rejections."""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labci_spec import MAX_METRICS_BYTES, MetricsError, parse_metrics_json
from labci_spec.metrics import (
    METRIC_NAME_PATTERN,
    METRICS_SUFFIXES,
    metrics_format,
    parse_metric_line,
    parse_metrics,
    parse_metrics_csv,
    parse_metrics_yaml,
)

VALID_CASES = [
    ("flat", '{"acc": 0.9, "loss": 1}', {"acc": 0.9, "loss": 1.0}),
    (
        "nested",
        '{"eval": {"acc": 0.9, "f1": {"macro": 0.5}}}',
        {"eval.acc": 0.9, "eval.f1.macro": 0.5},
    ),
    ("empty", "{}", {}),
    ("negative-exp", '{"lr": -1.5e-3}', {"lr": -0.0015}),
    ("bytes-bom", b'\xef\xbb\xbf{"a": 2}', {"a": 2.0}),
    ("brackets-in-key", '{"[[[[": 1}', {"[[[[": 1.0}),
    ("depth-32", '{"a":' * 31 + "{}" + "}" * 31, {}),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in VALID_CASES], ids=[c[0] for c in VALID_CASES]
)
def test_valid_metrics(text: str | bytes, expected: dict[str, float]) -> None:
    metrics = parse_metrics_json(text)
    assert metrics == expected
    assert all(type(value) is float for value in metrics.values())


ERROR_CASES = [
    ("string", '{"acc": "0.9"}', "'acc' is not a number (got a string)"),
    ("bool", '{"eval": {"ok": true}}', "'eval.ok' is not a number (got a boolean)"),
    ("null", '{"acc": null}', "'acc' is not a number (got null)"),
    ("list", '{"acc": [1]}', "'acc' is not a number (got a list)"),
    ("nan", '{"eval": {"loss": NaN}}', "'eval.loss' is NaN, not a finite number"),
    ("infinity", '{"loss": -Infinity}', "'loss' is -Infinity, not a finite number"),
    ("float-overflow", '{"big": 1e400}', "'big' is too large (1e400...)"),
    ("int-overflow", '{"big": ' + "9" * 400 + "}", "'big' is too large (99999999999999999999...)"),
    ("top-list", "[1, 2]", "expected a JSON object, got a list"),
    ("top-number", "3", "expected a JSON object, got float"),
    (
        "not-json",
        "{acc: 1}",
        "not valid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1)",
    ),
    ("duplicate", '{"a": 1, "a": 2}', "key 'a' appears twice in one object"),
    ("flattened-clash", '{"a.b": 1, "a": {"b": 2}}', "'a.b' is defined twice"),
    ("empty-name", '{"": 1}', "empty metric name"),
    ("empty-nested-name", '{"a": {"": 1}}', "empty metric name under 'a'"),
    ("too-deep", '{"a":' * 33 + "1" + "}" * 33, "nesting deeper than 32 levels"),
    ("deep-bomb", "[" * 100_000, "nesting deeper than 32 levels"),
    ("too-many", "{" + ",".join(f'"m{i}": 1' for i in range(1001)) + "}", "more than 1000 metrics"),
    ("too-large", " " * (MAX_METRICS_BYTES + 1), "file is larger than 1048576 bytes"),
    (
        "too-large-utf8",
        '"' + "é" * (MAX_METRICS_BYTES // 2) + '"',
        "file is larger than 1048576 bytes",
    ),
    ("bad-utf8", b'{"a": 1, "\xff": 2}', "file is not valid UTF-8 (at offset 10)"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_invalid_metrics(text: str | bytes, message: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics_json(text)
    assert str(caught.value) == f"metrics invalid: {message}"


def test_thousand_metrics_are_allowed() -> None:
    text = "{" + ",".join(f'"m{i}": {i}' for i in range(1000)) + "}"
    assert len(parse_metrics_json(text)) == 1000


def test_object_nesting_bomb_is_refused_before_parsing() -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics_json('{"a":' * 100_000)
    assert str(caught.value) == "metrics invalid: nesting deeper than 32 levels"


# --- YAML ---------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]
"""

YAML_VALID_CASES = [
    ("flat", "acc: 0.9\nloss: 1\n", {"acc": 0.9, "loss": 1.0}),
    (
        "nested",
        "eval:\n  acc: 0.9\n  f1: {macro: 0.5}\n",
        {"eval.acc": 0.9, "eval.f1.macro": 0.5},
    ),
    ("flow", "{acc: 0.9, eval: {loss: -1.5e-3}}", {"acc": 0.9, "eval.loss": -0.0015}),
    ("empty-mapping", "{}", {}),
    ("document-markers", "---\nacc: 1  # best epoch\n...\n", {"acc": 1.0}),
    ("core-ints", "hex: 0x1F\noct: 0o17\ndec: 017\n", {"hex": 31.0, "oct": 15.0, "dec": 17.0}),
    ("core-floats", "a: 1.\nb: .5\nc: +2e3\n", {"a": 1.0, "b": 0.5, "c": 2000.0}),
    ("number-key", "1: 0.5", {"1": 0.5}),
    ("quoted-key", '"eval/acc": 0.5', {"eval/acc": 0.5}),
    ("explicit-float-tag", "a: !!float 3", {"a": 3.0}),
    ("bytes-bom", b"\xef\xbb\xbfa: 2", {"a": 2.0}),
    ("depth-32", "{a: " * 31 + "{}" + "}" * 31, {}),
    ("thousand", "\n".join(f"m{i}: {i}" for i in range(1000)), {f"m{i}": i for i in range(1000)}),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [c[1:] for c in YAML_VALID_CASES],
    ids=[c[0] for c in YAML_VALID_CASES],
)
def test_valid_yaml_metrics(text: str | bytes, expected: dict[str, float]) -> None:
    metrics = parse_metrics_yaml(text)
    assert metrics == expected
    assert all(type(value) is float for value in metrics.values())


YAML_ERROR_CASES = [
    (
        "alias-bomb",
        BILLION_LAUGHS,
        "YAML anchors and aliases are not supported (line 1, column 4)",
    ),
    ("anchor", "a: &x 1\nb: 2", "YAML anchors and aliases are not supported (line 1, column 4)"),
    ("alias", "a: *x", "YAML anchors and aliases are not supported (line 1, column 4)"),
    (
        "merge-key",
        "<<: *base\nacc: 1",
        "YAML anchors and aliases are not supported (line 1, column 5)",
    ),
    ("nan", "eval:\n  loss: .nan", "'eval.loss' is .nan, not a finite number"),
    ("inf", "loss: .inf", "'loss' is .inf, not a finite number"),
    ("minus-inf", "loss: -.Inf", "'loss' is -.Inf, not a finite number"),
    ("yes-is-a-string", "ok: yes", "'ok' is not a number (got a string)"),
    ("no-is-a-string", "ok: no", "'ok' is not a number (got a string)"),
    ("bool", "ok: true", "'ok' is not a number (got a boolean)"),
    ("null", "acc: ~", "'acc' is not a number (got null)"),
    ("empty-value", "acc:", "'acc' is not a number (got null)"),
    ("quoted-number", "acc: '0.9'", "'acc' is not a number (got a string)"),
    ("underscore-int", "n: 1_000", "'n' is not a number (got a string)"),
    ("sexagesimal", "t: 1:30", "'t' is not a number (got a string)"),
    ("list", "acc: [1]", "'acc' is not a number (got a list)"),
    ("nested-list", "eval:\n  acc:\n    - 1", "'eval.acc' is not a number (got a list)"),
    ("other-tag", "a: !!binary aGk=", "'a' is not a number (got a value tagged !!binary)"),
    ("float-overflow", "big: 1e400", "'big' is too large (1e400...)"),
    ("hex-overflow", "big: 0x" + "f" * 300, "'big' is too large (0xffffffffffffffffff...)"),
    ("top-list", "- 1\n- 2", "expected a YAML mapping, got a list"),
    ("top-number", "3", "expected a YAML mapping, got float"),
    ("top-string", "acc", "expected a YAML mapping, got a string"),
    ("empty-file", "", "expected a YAML mapping, got an empty file"),
    ("comment-only", "# nothing yet\n", "expected a YAML mapping, got an empty file"),
    ("duplicate", "a: 1\nb: 2\na: 3", "key 'a' appears twice in one mapping (line 3)"),
    ("flattened-clash", "a.b: 1\na: {b: 2}", "'a.b' is defined twice"),
    ("empty-name", "'': 1", "empty metric name"),
    ("empty-nested-name", "a: {'': 1}", "empty metric name under 'a'"),
    ("list-key", "? [a]\n: 1", "a mapping key must be a plain name (line 1, column 3)"),
    ("too-deep", "{a: " * 33 + "1" + "}" * 33, "nesting deeper than 32 levels"),
    ("deep-block", "".join(f"{'  ' * i}a:\n" for i in range(40)), "nesting deeper than 32 levels"),
    ("deep-bomb", "{a: " * 100_000, "nesting deeper than 32 levels"),
    ("deep-list-bomb", "[" * 100_000, "expected a YAML mapping, got a list"),
    ("too-many", "\n".join(f"m{i}: 1" for i in range(1001)), "more than 1000 metrics"),
    (
        "too-many-keys",
        "".join(f"k{i}: {{}}\n" for i in range(32_001)),
        "more than 32000 keys (line 32001, column 1)",
    ),
    (
        "syntax",
        "acc: 1\n  loss: 2",
        "not valid YAML: mapping values are not allowed here (line 2, column 7)",
    ),
    (
        "two-documents",
        "a: 1\n---\nb: 2",
        "not valid YAML: expected a single document in the stream,"
        " but found another document (line 2, column 1)",
    ),
    ("nul", "a: 1\x00", "not valid YAML: character U+0000 is not allowed (at offset 4)"),
    ("bad-utf8", b"a: 1\n\xff: 2", "file is not valid UTF-8 (at offset 5)"),
    ("too-large", "#" * (MAX_METRICS_BYTES + 1), "file is larger than 1048576 bytes"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in YAML_ERROR_CASES], ids=[c[0] for c in YAML_ERROR_CASES]
)
def test_invalid_yaml_metrics(text: str | bytes, message: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics_yaml(text)
    assert str(caught.value) == f"metrics invalid: {message}"


# --- CSV ----------------------------------------------------------------------------

CSV_VALID_CASES = [
    ("one-row", "acc,loss\n0.9,0.3\n", {"acc": 0.9, "loss": 0.3}),
    (
        "last-row-wins",
        "epoch,acc,loss\n1,0.5,nan\n2,0.8,0.6\n3,0.9,0.3\n",
        {"epoch": 3.0, "acc": 0.9, "loss": 0.3},
    ),
    ("crlf-and-blank-lines", "acc,loss\r\n0.9,1\r\n\r\n\r\n", {"acc": 0.9, "loss": 1.0}),
    ("spaces", " acc , loss \n 0.9 , -1e-3 \n", {"acc": 0.9, "loss": -0.001}),
    ("quoted", '"eval/acc","loss, train"\n"0.5",2\n', {"eval/acc": 0.5, "loss, train": 2.0}),
    ("one-column", "acc\n0.9", {"acc": 0.9}),
    ("bytes-bom", b"\xef\xbb\xbfacc\n1\n", {"acc": 1.0}),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in CSV_VALID_CASES], ids=[c[0] for c in CSV_VALID_CASES]
)
def test_valid_csv_metrics(text: str | bytes, expected: dict[str, float]) -> None:
    metrics = parse_metrics_csv(text)
    assert metrics == expected
    assert all(type(value) is float for value in metrics.values())


CSV_ERROR_CASES = [
    ("empty-file", "", "expected a header row naming the metrics and a row of values"),
    ("header-only", "acc,loss\n", "expected a header row naming the metrics and a row of values"),
    ("text", "acc,loss\n0.9,low\n", "'loss' in row 2 is not a number (got 'low')"),
    (
        "last-row-is-checked",
        "epoch,loss\n1,0.5\n2,diverged\n",
        "'loss' in row 3 is not a number (got 'diverged')",
    ),
    ("nan", "acc,loss\n0.9,NaN\n", "'loss' in row 2 is NaN, not a finite number"),
    ("inf", "acc,loss\n0.9,-inf\n", "'loss' in row 2 is -inf, not a finite number"),
    ("too-large", "acc\n1e400\n", "'acc' in row 2 is too large (1e400...)"),
    ("empty-cell", "acc,loss\n0.9,\n", "'loss' in row 2 has no value"),
    ("underscore", "n\n1_000\n", "'n' in row 2 is not a number (got '1_000')"),
    ("long-cell", "n\n" + "x" * 30, "'n' in row 2 is not a number (got 'xxxxxxxxxxxxxxxxx...')"),
    ("short-row", "acc,loss\n0.9\n", "row 2 has 1 cell, expected 2"),
    ("long-row", "acc,loss\n1,2,3\n1,2\n", "row 2 has 3 cells, expected 2"),
    ("empty-name", "acc,,loss\n1,2,3\n", "column 2 of the header has no name"),
    ("blank-name", "acc, \n1,2\n", "column 2 of the header has no name"),
    ("duplicate-name", "acc,loss,acc\n1,2,3\n", "column 'acc' appears twice in the header"),
    ("too-many-columns", ",".join(f"m{i}" for i in range(1001)) + "\n", "more than 1000 metrics"),
    ("bad-quote", 'acc\n"1"x\n', "not valid CSV: ',' expected after '\"' (row 2)"),
    ("bad-utf8", b"acc\n\xff\n", "file is not valid UTF-8 (at offset 4)"),
    ("too-large", "a\n" + "1\n" * MAX_METRICS_BYTES, "file is larger than 1048576 bytes"),
]


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in CSV_ERROR_CASES], ids=[c[0] for c in CSV_ERROR_CASES]
)
def test_invalid_csv_metrics(text: str | bytes, message: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics_csv(text)
    assert str(caught.value) == f"metrics invalid: {message}"


def test_thousand_csv_columns_are_allowed() -> None:
    names = [f"m{i}" for i in range(1000)]
    text = ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"
    assert parse_metrics_csv(text) == dict.fromkeys(names, 1.0)


# --- choosing a parser by suffix ----------------------------------------------------

FORMAT_CASES = [
    ("json", "metrics.json", "json"),
    ("yaml", "out/metrics.yaml", "yaml"),
    ("yml-upper", "METRICS.YML", "yaml"),
    ("csv", "train_log.csv", "csv"),
    ("hidden-json", ".json", "json"),
    ("jsonl", "metrics.jsonl", None),
    ("txt", "metrics.txt", None),
    ("no-suffix", "metrics", None),
    ("suffix-in-dir", "metrics.json/out", None),
]


@pytest.mark.parametrize(
    ("file", "expected"), [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES]
)
def test_metrics_format(file: str, expected: str | None) -> None:
    assert metrics_format(file) == expected


def test_suffixes_are_the_supported_formats() -> None:
    assert METRICS_SUFFIXES == (".json", ".yaml", ".yml", ".csv")
    assert {metrics_format(f"m{suffix}") for suffix in METRICS_SUFFIXES} == {"json", "yaml", "csv"}


DISPATCH_CASES = [
    ("json", "m.json", '{"acc": 1}', {"acc": 1.0}),
    ("yaml", "m.yaml", "acc: 1", {"acc": 1.0}),
    ("yml", "m.Yml", b"acc: 1", {"acc": 1.0}),
    ("csv", "m.CSV", "acc\n1", {"acc": 1.0}),
]


@pytest.mark.parametrize(
    ("file", "data", "expected"),
    [c[1:] for c in DISPATCH_CASES],
    ids=[c[0] for c in DISPATCH_CASES],
)
def test_parse_metrics_dispatches_on_the_suffix(
    file: str, data: str | bytes, expected: dict[str, float]
) -> None:
    assert parse_metrics(file, data) == expected


def test_parse_metrics_refuses_an_unsupported_suffix() -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics("out/metrics.txt", "acc=1")
    assert str(caught.value) == (
        "metrics invalid: out/metrics.txt: unsupported file type (use .json, .yaml, .yml, .csv)"
    )


TEN_MIB = 10 * 1024 * 1024
SIZE_BOMB_CASES = [
    ("json", "m.json", "[" * TEN_MIB),
    ("json-bytes", "m.json", b'{"a": ' + b"1" * TEN_MIB + b"}"),
    ("yaml", "m.yaml", "a: [" + "1," * (TEN_MIB // 2)),
    ("yaml-bytes", "m.yml", b"{a: " * (TEN_MIB // 4)),
    ("csv", "m.csv", "a\n" + "1\n" * (TEN_MIB // 2)),
]


@pytest.mark.parametrize(
    ("file", "data"), [c[1:] for c in SIZE_BOMB_CASES], ids=[c[0] for c in SIZE_BOMB_CASES]
)
def test_ten_mib_is_refused_by_size_before_parsing(file: str, data: str | bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(MetricsError) as caught:
        parse_metrics(file, data)
    assert str(caught.value) == "metrics invalid: file is larger than 1048576 bytes"
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("file", "data"),
    [
        ("m.json", '{"a":' * 100_000),
        ("m.json", '{"a": ' + "[" * 100_000),
        ("m.yaml", "{a: " * 100_000),
        # Block nesting costs its indentation: as deep as 1 MiB allows, then flow.
        ("m.yaml", "".join(f"{' ' * i}a:\n" for i in range(1000)) + "{a: " * 100_000),
    ],
    ids=["json-objects", "json-lists", "yaml-flow", "yaml-block-then-flow"],
)
def test_deep_nesting_is_a_metrics_error_not_a_recursion_error(file: str, data: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metrics(file, data)
    assert str(caught.value) == "metrics invalid: nesting deeper than 32 levels"


# --- ::metric lines -----------------------------------------------------------------

LINE_VALID_CASES = [
    ("plain", "::metric name=accuracy::0.912", ("accuracy", 0.912)),
    ("newline", "::metric name=loss::1.5\n", ("loss", 1.5)),
    ("crlf", "::metric name=loss::1.5\r\n", ("loss", 1.5)),
    ("spaces-around-value", "::metric name=loss::  -2e-3 \t", ("loss", -0.002)),
    ("integer", "::metric name=epoch::12", ("epoch", 12.0)),
    ("name-charset", "::metric name=eval/top-5.acc_x::1", ("eval/top-5.acc_x", 1.0)),
    ("name-128", f"::metric name={'n' * 128}::1", ("n" * 128, 1.0)),
]


@pytest.mark.parametrize(
    ("line", "expected"), [c[1:] for c in LINE_VALID_CASES], ids=[c[0] for c in LINE_VALID_CASES]
)
def test_metric_line(line: str, expected: tuple[str, float]) -> None:
    assert parse_metric_line(line) == expected


NOT_A_COMMAND_CASES = [
    ("output", "epoch 3: loss 0.3"),
    ("empty", ""),
    ("indented", "  ::metric name=acc::0.9"),
    ("quoted", "echo '::metric name=acc::0.9'"),
    ("other-command", "::warning file=a.py::careful"),
    ("longer-command-name", "::metrics name=acc::0.9"),
    ("single-colon", ":metric name=acc::0.9"),
]


@pytest.mark.parametrize(
    "line", [c[1] for c in NOT_A_COMMAND_CASES], ids=[c[0] for c in NOT_A_COMMAND_CASES]
)
def test_other_lines_are_not_metrics(line: str) -> None:
    assert parse_metric_line(line) is None


LINE_ERROR_CASES = [
    (
        "no-value-part",
        "::metric name=acc",
        "expected ::metric name=<name>::<value> in '::metric name=acc'",
    ),
    ("bare", "::metric\n", "expected ::metric name=<name>::<value> in '::metric'"),
    ("no-name", "::metric::0.9", "missing name= in '::metric::0.9'"),
    ("empty-name", "::metric name=::0.9", "missing name= in '::metric name=::0.9'"),
    (
        "positional-name",
        "::metric acc::0.9",
        "unknown parameter 'acc' (only name= is allowed) in '::metric acc::0.9'",
    ),
    (
        "extra-parameter",
        "::metric name=acc,step=3::0.9",
        "unknown parameter 'step' (only name= is allowed) in '::metric name=acc,step=3::0.9'",
    ),
    (
        "name-twice",
        "::metric name=acc,name=f1::0.9",
        "name= is given twice in '::metric name=acc,name=f1::0.9'",
    ),
    (
        "bad-name",
        "::metric name=top 5::0.9",
        "invalid metric name 'top 5' (allowed: 1-128 letters, digits, _ - . /)"
        " in '::metric name=top 5::0.9'",
    ),
    (
        "name-too-long",
        f"::metric name={'n' * 129}::1",
        "invalid metric name 'nnnnnnnnnnnnnnnnnnnn…' (allowed: 1-128 letters, digits, _ - . /)"
        f" in '::metric name={'n' * 63}...'",
    ),
    ("no-value", "::metric name=acc::\r\n", "'acc' has no value in '::metric name=acc::'"),
    (
        "not-a-number",
        "::metric name=acc::high",
        "'acc' is not a number (got 'high') in '::metric name=acc::high'",
    ),
    (
        "nan",
        "::metric name=acc::nan",
        "'acc' is nan, not a finite number in '::metric name=acc::nan'",
    ),
    (
        "infinity",
        "::metric name=acc::-Infinity",
        "'acc' is -Infinity, not a finite number in '::metric name=acc::-Infinity'",
    ),
    (
        "too-large",
        "::metric name=acc::1e999",
        "'acc' is too large (1e999...) in '::metric name=acc::1e999'",
    ),
    (
        "two-values",
        "::metric name=acc::1::2",
        "'acc' is not a number (got '1::2') in '::metric name=acc::1::2'",
    ),
    (
        "control-characters-escaped",
        "::metric name=acc::\x1b[31m1",
        "'acc' is not a number (got '\\x1b[31m1') in '::metric name=acc::\\x1b[31m1'",
    ),
]


@pytest.mark.parametrize(
    ("line", "message"), [c[1:] for c in LINE_ERROR_CASES], ids=[c[0] for c in LINE_ERROR_CASES]
)
def test_malformed_metric_line(line: str, message: str) -> None:
    with pytest.raises(MetricsError) as caught:
        parse_metric_line(line)
    assert str(caught.value) == f"metrics invalid: {message}"


def test_metric_name_pattern() -> None:
    assert re.fullmatch(METRIC_NAME_PATTERN, "eval/top-5.acc_X9")
    assert re.fullmatch(METRIC_NAME_PATTERN, "a" * 128)
    assert not re.fullmatch(METRIC_NAME_PATTERN, "a" * 129)
    assert not re.fullmatch(METRIC_NAME_PATTERN, "")
    assert not re.fullmatch(METRIC_NAME_PATTERN, "acc\n")


# --- any input: metrics or MetricsError, nothing else -------------------------------

METRIC_PIECES = [
    "acc", "loss", "eval", "a.b", "'", '"', ":", ": ", ",", "-", "- ", "\n", "\r\n", "  ",
    "{", "}", "[", "]", "&a ", "*a", "!!float ", "!!str ", "? ", "#", "---", "...",
    "0", "1", "-1.5", "1e400", "0x1F", "0o7", ".nan", ".inf", "nan", "NaN", "Infinity",
    "true", "yes", "null", "~", "1_0", "1:30", "\x00", "é", "\ufeff",
]  # fmt: skip


def assert_metrics_or_error(file: str, data: str | bytes) -> None:
    """Anything else escaping (RecursionError, yaml.YAMLError, ...) fails the test."""
    try:
        result: dict[str, float] | MetricsError = parse_metrics(file, data)
    except MetricsError as exc:
        result = exc
    if isinstance(result, MetricsError):
        assert str(result).startswith("metrics invalid: ")
    else:
        assert all(isinstance(name, str) for name in result)
        assert all(type(value) is float and math.isfinite(value) for value in result.values())


@pytest.mark.parametrize("file", ["m.json", "m.yaml", "m.csv"], ids=["json", "yaml", "csv"])
@given(data=st.one_of(st.text(), st.binary()))
def test_arbitrary_input_gives_metrics_or_metrics_error(file: str, data: str | bytes) -> None:
    assert_metrics_or_error(file, data)


@pytest.mark.parametrize("file", ["m.json", "m.yaml", "m.csv"], ids=["json", "yaml", "csv"])
@given(text=st.lists(st.sampled_from(METRIC_PIECES), max_size=40).map("".join))
def test_metrics_like_input_gives_metrics_or_metrics_error(file: str, text: str) -> None:
    assert_metrics_or_error(file, text)


LINE_PIECES = ["::metric", " name=", "acc", "::", "1", ",", "=", "\r\n", "nan", "x" * 130]


@given(line=st.one_of(st.text(), st.lists(st.sampled_from(LINE_PIECES), max_size=12).map("".join)))
def test_any_line_is_a_metric_none_or_metrics_error(line: str) -> None:
    try:
        result: tuple[str, float] | MetricsError | None = parse_metric_line(line)
    except MetricsError as exc:
        result = exc
    if isinstance(result, MetricsError):
        assert str(result).startswith("metrics invalid: ")
    elif result is not None:
        name, value = result
        assert re.fullmatch(METRIC_NAME_PATTERN, name)
        assert math.isfinite(value)
