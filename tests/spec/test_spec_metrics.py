"""parse_metrics_json: accepted shapes and the exact message for each rejection."""

from __future__ import annotations

import pytest

from labci_spec import MAX_METRICS_BYTES, MetricsError, parse_metrics_json

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
