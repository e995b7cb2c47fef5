"""README badges and trend charts: well-formed XML, the right words, colours and widths.

Expected widths come from shields.io itself: its "build | passing" badge is 88 px wide
(37 + 51), and anafanafo's own tests measure "m" at 10.7 px and "v1.2.511" at 49.48 px in
Verdana 11px. The endpoint JSON is checked against the schema in
`tests/fixtures/shields/endpoint.schema.json`, transcribed from shields' source.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from labci_server.web.badges import (
    STATUS_COLORS,
    badge_json,
    box_text_width,
    etag,
    format_metric,
    render_badge,
    trend_svg,
)
from labci_server.web.verdana import ADVANCE_PX, FALLBACK_PX, text_width_px

SVG = "{http://www.w3.org/2000/svg}"
SCHEMA_PATH = Path(__file__).parents[1] / "fixtures" / "shields" / "endpoint.schema.json"
ENDPOINT_SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(ENDPOINT_SCHEMA)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def visible_texts(root: ET.Element) -> list[str]:
    """What a reader sees: the <text> elements that are not the aria-hidden shadows."""
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("aria-hidden") != "true"]


def boxes(root: ET.Element) -> tuple[ET.Element, ET.Element]:
    """The label and message rectangles (the third rect in the group is the gradient)."""
    group = next(g for g in root.iter(f"{SVG}g") if g.get("clip-path"))
    label, message, _gradient = group.findall(f"{SVG}rect")
    return label, message


def text_by_class(root: ET.Element, kind: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == kind]


LONG = "x" * 70

SHOWN_CASES = [
    ("build", "passing", "build", "passing"),
    ("", "passing", "", "passing"),
    ("genauigkeit", "größer", "genauigkeit", "größer"),
    ("評価", "良い", "評価", "良い"),
    (LONG, "ok", "x" * 63 + "…", "ok"),
    ("acc", "y" * 64, "acc", "y" * 64),
    ("a\tb\nc", "d\r\ne", "a b c", "d  e"),
    ("acc", "", "acc", "n/a"),
    ("acc", "\x00\x07", "acc", "n/a"),
]


@pytest.mark.parametrize(
    ("label", "message", "label_shown", "message_shown"),
    SHOWN_CASES,
    ids=[
        "plain",
        "no-label",
        "latin1",
        "cjk",
        "long-label-cut",
        "64-chars-kept",
        "whitespace-to-spaces",
        "empty-message",
        "only-controls",
    ],
)
def test_badge_shows_the_label_and_message(
    label: str, message: str, label_shown: str, message_shown: str
) -> None:
    root = parse(render_badge(label, message, "blue"))
    expected = [label_shown, message_shown] if label_shown else [message_shown]
    assert visible_texts(root) == expected
    spoken = f"{label_shown}: {message_shown}" if label_shown else message_shown
    assert root.findtext(f"{SVG}title") == spoken
    assert root.get("aria-label") == spoken
    assert root.get("role") == "img"


HOSTILE = [
    ("<script>alert(1)</script>", "<script>alert(1)</script>", "&lt;script&gt;"),
    ("&amp;", "&amp;", "&amp;amp;"),
    ("say \"hi\" 'there'", "say \"hi\" 'there'", "&quot;hi&quot;"),
    ("x]]>y", "x]]>y", "]]&gt;"),
    ("a\x00b", "ab", None),
    ("\x1b[31mred\x1b[0m", "red", None),
    ("\x1b]8;;http://evil\x07link\x1b]8;;\x07", "link", None),
    ("admin\u202egnp.exe", "admingnp.exe", None),
    ("lone\ud800surrogate", "lonesurrogate", None),
    ("del\x7f and c1\x85", "del and c1", None),
    ("bad\ufffechar", "badchar", None),
]


@pytest.mark.parametrize(
    ("text", "shown", "escaped"),
    HOSTILE,
    ids=[
        "script-tag",
        "entity",
        "quotes",
        "cdata-end",
        "nul",
        "ansi-colour",
        "ansi-hyperlink",
        "bidi-override",
        "lone-surrogate",
        "del-and-c1",
        "xml-noncharacter",
    ],
)
def test_hostile_text_is_escaped_or_dropped(text: str, shown: str, escaped: str | None) -> None:
    svg = render_badge(text, text, "red")
    svg.encode("utf-8")  # no lone surrogate survives
    root = parse(svg)
    assert visible_texts(root) == [shown, shown]
    assert root.get("aria-label") == f"{shown}: {shown}"
    if escaped is not None:
        assert escaped in svg
    assert "<script" not in svg
    assert badge_json(text, text, "red")["message"] == shown


COLOR_CASES = [
    ("brightgreen", "#4c1", "brightgreen"),
    ("green", "#97ca00", "green"),
    ("yellowgreen", "#a4a61d", "yellowgreen"),
    ("yellow", "#dfb317", "yellow"),
    ("orange", "#fe7d37", "orange"),
    ("red", "#e05d44", "red"),
    ("blue", "#007ec6", "blue"),
    ("lightgrey", "#9f9f9f", "lightgrey"),
    ("lightgray", "#9f9f9f", "lightgrey"),
    ("grey", "#555", "grey"),
    ("gray", "#555", "grey"),
    ("informational", "#007ec6", "blue"),
    ("success", "#4c1", "brightgreen"),
    ("critical", "#e05d44", "red"),
    (" Orange ", "#fe7d37", "orange"),
    ("#ABCDEF", "#abcdef", "#abcdef"),
    ("abcdef", "#abcdef", "#abcdef"),
    ("#0f0", "#0f0", "#0f0"),
    ("purple", "#9f9f9f", "lightgrey"),
    ("#12345", "#9f9f9f", "lightgrey"),
    ("#abcdeg", "#9f9f9f", "lightgrey"),
    ("", "#9f9f9f", "lightgrey"),
    ('red" onload="x', "#9f9f9f", "lightgrey"),
]


@pytest.mark.parametrize(
    ("color", "fill", "json_color"),
    COLOR_CASES,
    ids=[case[0].strip() or "empty" for case in COLOR_CASES],
)
def test_colour_fills_the_message_box(color: str, fill: str, json_color: str) -> None:
    label_box, message_box = boxes(parse(render_badge("build", "passing", color)))
    assert label_box.get("fill") == "#555"
    assert message_box.get("fill") == fill
    assert badge_json("build", "passing", color)["color"] == json_color


@pytest.mark.parametrize(
    ("color", "text_fill"),
    [("#ffffff", "#333"), ("#fffd80", "#333"), ("yellow", "#fff"), ("#000000", "#fff")],
    ids=["white", "pale-yellow", "shields-yellow", "black"],
)
def test_text_stays_readable_on_light_boxes(color: str, text_fill: str) -> None:
    root = parse(render_badge("", "passing", color))
    (text,) = [t for t in root.iter(f"{SVG}text") if t.get("aria-hidden") != "true"]
    assert text.get("fill") == text_fill


@pytest.mark.parametrize(
    ("status", "fill"),
    [("passing", "#4c1"), ("failing", "#e05d44"), ("running", "#dfb317"), ("unknown", "#9f9f9f")],
    ids=["passing", "failing", "running", "unknown"],
)
def test_status_colours(status: str, fill: str) -> None:
    root = parse(render_badge("build", status, STATUS_COLORS[status]))
    assert boxes(root)[1].get("fill") == fill
    assert visible_texts(root) == ["build", status]


@pytest.mark.parametrize(
    ("text", "width_px"),
    [("m", 10.699), ("v1.2.511", 49.48), ("build", 26.706), ("passing", 41.756)],
    ids=["m", "version", "build", "passing"],
)
def test_verdana_widths_match_shields_measurements(text: str, width_px: float) -> None:
    assert text_width_px(text) == pytest.approx(width_px, abs=0.01)


@pytest.mark.parametrize(
    ("label", "message", "left", "right"),
    [
        ("build", "passing", 37, 51),
        ("", "passing", 0, 51),
        ("coverage", "97%", 61, 35),
        ("日本", "ok", 31, 23),
    ],
    ids=["build-passing-is-88", "no-label", "coverage", "outside-table-counts-as-m"],
)
def test_box_widths(label: str, message: str, left: int, right: int) -> None:
    def expected(text: str) -> int:
        if not text:
            return 0
        width = math.floor(sum(ADVANCE_PX.get(c, FALLBACK_PX) for c in text))
        return (width if width % 2 else width + 1) + 10

    assert (expected(label), expected(message)) == (left, right)
    root = parse(render_badge(label, message, "green"))
    label_box, message_box = boxes(root)
    assert (label_box.get("width"), message_box.get("width")) == (str(left), str(right))
    assert message_box.get("x") == str(left)
    assert root.get("width") == str(left + right)
    lengths = [int(t.get("textLength") or 0) for t in root.iter(f"{SVG}text")]
    assert set(lengths) == {10 * (w - 10) for w in (left, right) if w}


def test_badges_widen_as_text_grows() -> None:
    widths = [
        int(parse(render_badge("acc", message, "blue")).get("width") or 0)
        for message in ("i", "ii", "iii", "0.9", "0.91", "0.912", "0.912 ± 0.004")
    ]
    assert widths == sorted(widths)
    assert len(set(widths)) == len(widths)
    assert box_text_width("i" * 10) < box_text_width("m" * 10)


JSON_CASES = [
    (("build", "passing", "brightgreen"), {}),
    (("", "0.912", "blue"), {}),
    (("acc", "", "#ABCDEF"), {}),
    (("<b>&amp;", "\x1b[1m]]>", "nonsense"), {}),
    (("build", "unknown", "lightgrey"), {"is_error": True, "cache_seconds": 300}),
    (("build", "passing", "green"), {"cache_seconds": 0}),
]


@pytest.mark.parametrize(
    ("args", "options"),
    JSON_CASES,
    ids=["status", "empty-label", "empty-message", "hostile", "error-cached", "no-cache"],
)
def test_badge_json_follows_the_endpoint_schema(
    args: tuple[str, str, str], options: dict[str, Any]
) -> None:
    body = badge_json(*args, **options)
    VALIDATOR.validate(body)
    assert body["schemaVersion"] == 1
    assert body["isError"] is options.get("is_error", False)
    assert body.get("cacheSeconds") == options.get("cache_seconds")
    svg_texts = visible_texts(parse(render_badge(*args)))
    assert [t for t in (body["label"], body["message"]) if t] == svg_texts


@pytest.mark.parametrize(
    "body",
    [
        {"label": "a", "message": "b"},
        {"schemaVersion": 2, "label": "a", "message": "b"},
        {"schemaVersion": 1, "label": "a", "message": ""},
        {"schemaVersion": 1, "message": "b"},
        {"schemaVersion": 1, "label": "a", "message": "b", "extra": 1},
        {"schemaVersion": 1, "label": "a", "message": "b", "cacheSeconds": -1},
        {"schemaVersion": 1, "label": "a", "message": "b", "namedLogo": "x", "logoSvg": "<svg/>"},
        {"schemaVersion": 1, "label": "a", "message": "b", "logoColor": "red"},
    ],
    ids=[
        "no-version",
        "version-2",
        "empty-message",
        "no-label",
        "unknown-key",
        "negative-cache",
        "two-logos",
        "logo-colour-without-logo",
    ],
)
def test_endpoint_schema_rejects_what_shields_rejects(body: dict[str, Any]) -> None:
    assert not VALIDATOR.is_valid(body)


def test_endpoint_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(ENDPOINT_SCHEMA)
    assert "badges/shields" in ENDPOINT_SCHEMA["$comment"]


def test_negative_cache_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_seconds must be ≥ 0, got -5"):
        badge_json("a", "b", "red", cache_seconds=-5)


@pytest.mark.parametrize(
    ("value", "std", "n", "text"),
    [
        (0.912, None, None, "0.912"),
        (0.912, 0.004, None, "0.912 ± 0.004"),
        (0.912, 0.004, 5, "0.912 ± 0.004 (n=5)"),
        (0.91234, 0.004321, 3, "0.9123 ± 0.0043 (n=3)"),
        (0.5, 0.1, 1, "0.5 (n=1)"),
        (0.912, float("nan"), 3, "0.912 (n=3)"),
        (0.912, -0.004, None, "0.912 ± 0.004"),
        (123000.0, None, None, "1.23e+05"),
        (123456.0, None, None, "1.235e+05"),
        (1234.5678, None, None, "1235"),
        (42.0, None, None, "42"),
        (-2.5, None, None, "-2.5"),
        (0.0, None, None, "0"),
        (-0.0, None, None, "0"),
        (0.000012345, None, None, "1.234e-05"),
        (float("nan"), None, None, "nan"),
        (float("inf"), None, None, "inf"),
    ],
    ids=[
        "plain",
        "std",
        "std-and-n",
        "four-and-two-digits",
        "single-sample-no-spread",
        "nan-std",
        "negative-std",
        "large",
        "large-rounded",
        "thousands",
        "integer",
        "negative",
        "zero",
        "negative-zero",
        "tiny",
        "nan",
        "inf",
    ],
)
def test_format_metric(value: float, std: float | None, n: int | None, text: str) -> None:
    assert format_metric(value, std, n) == text


def polyline_points(root: ET.Element) -> list[tuple[float, float]]:
    polyline = root.find(f".//{SVG}polyline")
    assert polyline is not None
    pairs = (pair.split(",") for pair in (polyline.get("points") or "").split())
    return [(float(x), float(y)) for x, y in pairs]


THIRTY = [(1_700_000_000 + 3600 * i, 0.9 + 0.001 * i, 0.002) for i in range(30)]


@pytest.mark.parametrize(
    ("points", "last", "drawn"),
    [
        ([], None, 0),
        ([(1.0, 0.5)], "0.5", 1),
        (THIRTY, format_metric(THIRTY[-1][1]), 30),
        ([(3.0, 0.3), (1.0, 0.1), (2.0, 0.2)], "0.3", 3),
        ([(1.0, 0.1), (2.0, float("nan")), (float("inf"), 9.0), (3.0, 0.7)], "0.7", 2),
        ([(5.0, 1.0), (5.0, 1.0), (5.0, 1.0)], "1", 3),
        ([(1.0, -1e308), (2.0, 1e308, 1e308)], "1e+308", 2),
    ],
    ids=["empty", "one", "thirty", "unordered", "non-finite-dropped", "flat-same-time", "huge"],
)
def test_trend_chart(
    points: list[tuple[float, float] | tuple[float, float, float]], last: str | None, drawn: int
) -> None:
    root = parse(trend_svg(points, title="accuracy on main"))
    assert (root.get("width"), root.get("height")) == ("240", "60")
    assert text_by_class(root, "title") == ["accuracy on main"]
    assert root.findtext(f"{SVG}title") == "accuracy on main"
    if last is None:
        assert text_by_class(root, "empty") == ["no data yet"]
        assert root.find(f".//{SVG}polyline") is None
        return
    assert text_by_class(root, "last") == [last]
    assert text_by_class(root, "empty") == []
    xy = polyline_points(root)
    assert len(xy) == drawn
    assert all(0 <= x <= 240 and 0 <= y <= 60 for x, y in xy)
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    if drawn > 1:
        assert len({x for x, _ in xy}) == drawn


def test_trend_chart_marks_first_value_extremes_and_error_bars() -> None:
    points: list[tuple[float, float] | tuple[float, float, float]] = [
        (1.0, 0.5, 0.05),
        (2.0, 0.9),
        (3.0, 0.7, 0.1),
    ]
    root = parse(trend_svg(points, title="loss"))
    assert text_by_class(root, "first") == ["0.5"]
    assert text_by_class(root, "max") == ["0.9"]
    assert text_by_class(root, "min") == ["0.5"]
    assert text_by_class(root, "last") == ["0.7"]
    bars = [line for line in root.iter(f"{SVG}line") if line.get("class") == "error-bar"]
    assert len(bars) == 2
    _first_x, first_y = polyline_points(root)[0]
    bar_top, bar_bottom = sorted(float(bars[0].get(k) or 0) for k in ("y1", "y2"))
    assert bar_top < first_y < bar_bottom


@pytest.mark.parametrize(
    ("title", "spoken", "shown"),
    [
        ("<script>x</script>", "<script>x</script>", "<script>x</script>"),
        ("a]]>&amp;\x00\x1b[2Jb", "a]]>&amp;b", "a]]>&amp;b"),
        ("w" * 70, "w" * 63 + "…", "w" * 24 + "…"),
    ],
    ids=["script", "cdata-entity-controls", "long-cut-to-fit"],
)
def test_trend_title_is_escaped_and_fits(title: str, spoken: str, shown: str) -> None:
    svg = trend_svg([(1.0, 2.0)], title=title)
    assert "<script" not in svg
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == spoken
    assert root.get("aria-label") == spoken
    assert text_by_class(root, "title") == [shown]
    assert text_width_px(shown) <= 240 - 8


def test_trend_chart_refuses_a_size_it_cannot_lay_out() -> None:
    with pytest.raises(ValueError, match="at least 120×40 px, got 100×60"):
        trend_svg([], title="x", width=100)


BADGE = render_badge("build", "passing", "brightgreen")


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (BADGE, BADGE, True),
        (BADGE, BADGE.encode(), True),
        ("é", "é".encode(), True),
        (BADGE, render_badge("build", "failing", "red"), False),
        (BADGE, render_badge("build", "passing", "green"), False),
        (b"", b" ", False),
    ],
    ids=["stable", "str-and-bytes", "utf8", "other-text", "other-colour", "one-byte"],
)
def test_etag(a: str | bytes, b: str | bytes, same: bool) -> None:
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag(a)), "a strong, quoted entity tag"
    assert (etag(a) == etag(b)) is same
