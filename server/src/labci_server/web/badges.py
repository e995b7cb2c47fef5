"""README badges and trend charts, rendered as text: no HTTP, no database.

The routes look up a workflow's status or a metric's history and hand plain values to these
functions; what comes back is the response body. Badges copy shields.io's "flat" style
(badge-maker's `lib/badge-renderers.js` in badges/shields) so that a labci badge sits in a
README row of shields badges without looking out of place, and `badge_json` speaks shields'
endpoint format for projects that prefer to let shields.io draw.

Labels, messages and titles can carry text from pull requests (branch, job and metric
names), so every string goes through `clean_text` (control characters and ANSI escapes out,
at most 64 characters) and is escaped before it reaches the markup; the output always parses
as XML.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from types import MappingProxyType
from typing import Any, Final

from .verdana import fit_text, text_width_px

MAX_CHARS: Final = 64
"""Longest label, message or title shown; longer text is cut and ends in "…"."""

EMPTY_MESSAGE: Final = "n/a"
"""Shown for a message that is empty after cleaning; shields' endpoint format forbids ""."""

NAMED_COLORS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "brightgreen": "#4c1",
        "green": "#97ca00",
        "yellowgreen": "#a4a61d",
        "yellow": "#dfb317",
        "orange": "#fe7d37",
        "red": "#e05d44",
        "blue": "#007ec6",
        "grey": "#555",
        "lightgrey": "#9f9f9f",
    }
)
"""shields.io's named colours and their fills (badge-maker `lib/color.js`)."""

COLOR_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "gray": "grey",
        "lightgray": "lightgrey",
        "critical": "red",
        "important": "orange",
        "success": "brightgreen",
        "informational": "blue",
        "inactive": "lightgrey",
    }
)

STATUS_COLORS: Final[Mapping[str, str]] = MappingProxyType(
    {"passing": "brightgreen", "failing": "red", "running": "yellow", "unknown": "lightgrey"}
)
"""Message colour of each workflow status a badge shows: passing, failing, running, unknown."""

_FALLBACK_COLOR: Final = "lightgrey"
_LABEL_FILL: Final = "#555"
_FONT: Final = 'font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
_HEIGHT_PX: Final = 20
_PAD_PX: Final = 5  # each side of the text, so a box is its text width + 10 px
_HEX = re.compile(r"#?([0-9a-f]{3}|[0-9a-f]{6})")
# CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-character escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
# Bidirectional overrides and isolates reorder what a reader sees (Trojan Source).
_BIDI: Final = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str, limit: int = MAX_CHARS) -> str:
    """`text` as a badge can show it: one line, printable, at most `limit` characters.

    ANSI escape sequences go whole (so "\\x1b[31mred" shows "red", not "[31mred"); tabs
    and line breaks become spaces; other control characters, surrogates, bidi overrides and
    the XML-forbidden U+FFFE/U+FFFF are dropped. Cut text ends in "…" within the limit.
    """
    text = _ANSI.sub("", text)
    text = text.translate({ord(c): " " for c in "\t\n\r\v\f"})
    kept = "".join(char for char in text if _is_printable(char))
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def _is_printable(char: str) -> bool:
    category = unicodedata.category(char)
    return category not in ("Cc", "Cs") and char not in _BIDI and char not in "\ufffe\uffff"


def resolve_color(color: str) -> str:
    """shields name ("brightgreen", aliases resolved) or "#rrggbb"; unknown → "lightgrey"."""
    key = color.strip().lower()
    key = COLOR_ALIASES.get(key, key)
    if key in NAMED_COLORS:
        return key
    match = _HEX.fullmatch(key)
    return f"#{match.group(1)}" if match else _FALLBACK_COLOR


def _fill(color: str) -> str:
    resolved = resolve_color(color)
    return NAMED_COLORS.get(resolved, resolved)


def _brightness(fill: str) -> float:
    """YIQ brightness in [0, 1], as badge-maker uses to pick dark or light text."""
    digits = fill.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    return (red * 299 + green * 587 + blue * 114) / 255000


def box_text_width(text: str) -> int:
    """Text width a badge box reserves: Verdana 11px, floored, then rounded up to odd.

    The odd width is badge-maker's: with the text centred, it lands on the pixel grid.
    """
    width = math.floor(text_width_px(text))
    return width if width % 2 else width + 1


def render_badge(label: str, message: str, color: str) -> str:
    """A shields.io "flat" badge: grey label box, `color` message box, shadowed text.

    An empty label leaves only the message box, as on shields.io. Each `<text>` carries
    `textLength`, so a reader whose font is not Verdana still fits the text to the box.
    """
    label, message = clean_text(label), clean_text(message) or EMPTY_MESSAGE
    fill = _fill(color)
    label_w = box_text_width(label) if label else 0
    message_w = box_text_width(message)
    left = label_w + 2 * _PAD_PX if label else 0
    right = message_w + 2 * _PAD_PX
    total = left + right
    spoken = escape(f"{label}: {message}" if label else message)
    texts = _badge_text(message, fill, message_w, left - 1 if label else 0)
    if label:
        texts = _badge_text(label, _LABEL_FILL, label_w, 1) + texts
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{_HEIGHT_PX}" '
        f'role="img" aria-label="{spoken}"><title>{spoken}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="{_HEIGHT_PX}" rx="3" fill="#fff"/>'
        f'</clipPath><g clip-path="url(#r)">'
        f'<rect width="{left}" height="{_HEIGHT_PX}" fill="{_LABEL_FILL}"/>'
        f'<rect x="{left}" width="{right}" height="{_HEIGHT_PX}" fill="{fill}"/>'
        f'<rect width="{total}" height="{_HEIGHT_PX}" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" {_FONT} text-rendering="geometricPrecision" '
        f'font-size="110">{texts}</g></svg>'
    )


def _badge_text(text: str, background: str, width: int, margin: int) -> str:
    """Shadow and text, drawn at 10× and scaled down, like badge-maker, for sub-pixel x."""
    light = _brightness(background) > 0.69
    color, shadow = ("#333", "#ccc") if light else ("#fff", "#010101")
    x = 10 * (margin + width / 2 + _PAD_PX)
    common = f'x="{x:g}" transform="scale(.1)" textLength="{10 * width}"'
    body = escape(text)
    return (
        f'<text aria-hidden="true" {common} y="150" fill="{shadow}" fill-opacity=".3">'
        f'{body}</text><text {common} y="140" fill="{color}">{body}</text>'
    )


def badge_json(
    label: str,
    message: str,
    color: str,
    *,
    is_error: bool = False,
    cache_seconds: int | None = None,
) -> dict[str, Any]:
    """The same badge in shields.io's endpoint format (schemaVersion 1).

    Text is cleaned as for the SVG so that both formats show the same words. `is_error`
    stops shields users from overriding the colour; `cache_seconds` is a hint to shields'
    cache (shields never caches for less than its own minimum, 300 s).
    """
    if cache_seconds is not None and cache_seconds < 0:
        raise ValueError(f"cache_seconds must be ≥ 0, got {cache_seconds}")
    body: dict[str, Any] = {
        "schemaVersion": 1,
        "label": clean_text(label),
        "message": clean_text(message) or EMPTY_MESSAGE,
        "color": resolve_color(color),
        "isError": is_error,
    }
    if cache_seconds is not None:
        body["cacheSeconds"] = cache_seconds
    return body


def format_metric(value: float, std: float | None = None, n: int | None = None) -> str:
    """A metric for a badge: 4 significant digits, then "± std" and "(n=…)" for repeats.

    The spread gets 2 significant digits: from 3–5 seeds it is itself uncertain by tens of
    per cent, so more digits would be noise. A spread of one sample (n=1) is not shown.
    """
    text = _significant(value, 4)
    if std is not None and math.isfinite(std) and (n is None or n > 1):
        text += f" ± {_significant(abs(std), 2)}"
    if n is not None:
        text += f" (n={n})"
    return text


def _significant(value: float, digits: int) -> str:
    if value == 0:
        return "0"  # never "-0"
    return format(value, f".{digits}g")


def etag(body: str | bytes) -> str:
    """Strong ETag of a response body: equal bodies, equal tags; any change, a new tag."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


@dataclass(frozen=True)
class _Point:
    t: float
    value: float
    std: float | None
    source: int  # its index in the points given


@dataclass(frozen=True)
class TrendChange:
    """A change of level to mark on a trend chart: between the points at `before` and
    `after` (indices into the points given), with `label` as its tooltip."""

    before: int
    after: int
    label: str


TOOLTIP_CHARS: Final = 200


_HINT_PX: Final = 9  # font size of the value labels on a trend chart


def trend_svg(
    points: Sequence[tuple[float, float] | tuple[float, float, float]],
    *,
    title: str,
    width: int = 240,
    height: int = 60,
    changes: Sequence[TrendChange] = (),
) -> str:
    """A sparkline of (time, value[, std]) points for a README, oldest first.

    The polyline is scaled to the data; the highest and lowest values are marked at the
    left, the first value at its point and the last at the right edge. A std draws an error
    bar, and each change of level a dashed vertical line halfway between its two points,
    its label the line's tooltip. Points with a non-finite time or value are left out (a
    NaN is not a trend), as is a change either of whose points is, and a chart without
    points says so instead of drawing an empty frame.
    """
    if width < 120 or height < 40:
        raise ValueError(f"a trend chart needs at least 120×40 px, got {width}×{height}")
    series = _finite_points(points)
    heading = clean_text(title)
    spoken = escape(heading)
    shown = escape(fit_text(heading, width - 8))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{spoken}">',
        f"<title>{spoken}</title>",
        f'<rect width="{width}" height="{height}" rx="3" fill="#fff" stroke="#ddd"/>',
        f'<g {_FONT} fill="#333"><text class="title" x="4" y="12" font-size="11">{shown}</text>',
    ]
    if series:
        parts.extend(_plot(series, width, height, changes))
    else:
        parts.append(
            f'<text class="empty" x="{width / 2:g}" y="{(height + 16) / 2:g}" font-size="11" '
            'text-anchor="middle" fill="#9f9f9f">no data yet</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _finite_points(
    points: Sequence[tuple[float, float] | tuple[float, float, float]],
) -> list[_Point]:
    kept = []
    for source, point in enumerate(points):
        t, value = float(point[0]), float(point[1])
        std = float(point[2]) if len(point) > 2 else None
        if math.isfinite(t) and math.isfinite(value):
            good_std = std if std is not None and math.isfinite(std) and std > 0 else None
            kept.append(_Point(t, value, good_std, source))
    return sorted(kept, key=lambda p: p.t)


@dataclass(frozen=True)
class _Frame:
    """Maps a point's (index, time, value) to pixels inside the plot area."""

    left: float
    right: float
    top: float
    bottom: float
    series: list[_Point]
    low: float  # lowest value - std, at the bottom edge
    high: float  # highest value + std, at the top edge

    def x(self, index: int, t: float) -> float:
        t0, t1, count = self.series[0].t, self.series[-1].t, len(self.series)
        if t1 > t0:
            share = (t - t0) / (t1 - t0)
        else:  # one point, or all at one time: spread them evenly
            share = 0.5 if count == 1 else index / (count - 1)
        return self.left + share * (self.right - self.left)

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low) if self.high > self.low else 0.5
        share = share if math.isfinite(share) else 0.5
        return self.bottom - share * (self.bottom - self.top)


def _plot(
    series: list[_Point], width: int, height: int, changes: Sequence[TrendChange]
) -> list[str]:
    values = [p.value for p in series]
    high_label, low_label = format_metric(max(values)), format_metric(min(values))
    last_label = format_metric(values[-1])
    frame = _Frame(
        left=8 + max(text_width_px(high_label, _HINT_PX), text_width_px(low_label, _HINT_PX)),
        right=width - 8 - text_width_px(last_label, _HINT_PX),
        top=20.0,
        bottom=height - 6.0,
        series=series,
        low=min(p.value - (p.std or 0.0) for p in series),
        high=max(p.value + (p.std or 0.0) for p in series),
    )
    y_high, y_low = frame.y(max(values)), frame.y(min(values))
    parts = [_hint("max", frame.left - 4, y_high + 3, high_label, "end")]
    if y_low != y_high:
        parts.append(_hint("min", frame.left - 4, y_low + 3, low_label, "end"))
    for y in sorted({y_high, y_low}):
        parts.append(
            f'<line x1="{frame.left:.1f}" x2="{frame.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#ddd" stroke-dasharray="2,2"/>'
        )
    xy = [(frame.x(i, p.t), frame.y(p.value)) for i, p in enumerate(series)]
    parts.extend(_change_marks(changes, [p.source for p in series], [x for x, _ in xy], frame))
    for (x, _), p in zip(xy, series, strict=True):
        if p.std is not None:
            parts.append(
                f'<line class="error-bar" x1="{x:.1f}" x2="{x:.1f}" '
                f'y1="{frame.y(p.value - p.std):.1f}" y2="{frame.y(p.value + p.std):.1f}" '
                'stroke="#007ec6" stroke-opacity=".4"/>'
            )
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#007ec6" stroke-width="1.5"/>')
    return parts + _end_marks(xy, values, frame)


def _change_marks(
    changes: Sequence[TrendChange], sources: list[int], xs: list[float], frame: _Frame
) -> list[str]:
    """A dashed vertical line, under the polyline, halfway between each change's points."""
    x_of = dict(zip(sources, xs, strict=True))
    parts = []
    for change in changes:
        if change.before not in x_of or change.after not in x_of:
            continue
        x = (x_of[change.before] + x_of[change.after]) / 2
        label = escape(clean_text(change.label, TOOLTIP_CHARS))
        parts.append(
            f'<g class="change"><title>{label}</title><line x1="{x:.1f}" x2="{x:.1f}" '
            f'y1="{frame.top - 2:.1f}" y2="{frame.bottom + 2:.1f}" stroke="#e05d44" '
            'stroke-width="1.5" stroke-dasharray="3,2"/></g>'
        )
    return parts


def _end_marks(xy: list[tuple[float, float]], values: list[float], frame: _Frame) -> list[str]:
    """Dots and value labels on the first and last points; the last sits right of the line."""
    (x0, y0), (xn, yn) = xy[0], xy[-1]
    parts = []
    if len(xy) > 1:
        below = y0 <= (frame.top + frame.bottom) / 2  # keep the label inside the plot
        parts.append(
            _hint("first", x0, y0 + 10 if below else y0 - 4, format_metric(values[0]), "start")
        )
        parts.append(f'<circle cx="{x0:.1f}" cy="{y0:.1f}" r="2" fill="#007ec6"/>')
    parts.append(f'<circle cx="{xn:.1f}" cy="{yn:.1f}" r="2.5" fill="#007ec6"/>')
    parts.append(_hint("last", xn + 5, yn + 3, format_metric(values[-1]), "start"))
    return parts


def _hint(kind: str, x: float, y: float, text: str, anchor: str) -> str:
    return (
        f'<text class="{kind}" x="{x:.1f}" y="{y:.1f}" font-size="{_HINT_PX}" '
        f'text-anchor="{anchor}">{escape(text)}</text>'
    )
