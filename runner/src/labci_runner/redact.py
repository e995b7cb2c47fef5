"""Redaction of a job's secrets from everything the runner sends or prints.

The server hands each fetched attempt the secrets its workflow references. Steps see the
real values; nothing that leaves the runner for that attempt (log lines, step and completion
reports, metric names, artifact paths, the admin's progress line) may carry them. A
`Redactor` replaces every occurrence with `***`, in each form a value takes when a program
prints it:

- raw, and for a multi-line value each of its lines (stripped) as well;
- JSON-escaped (`json.dumps` with and without `ensure_ascii`, `\\/` and upper-case
  `\\uXXXX` variants);
- URL-escaped (`quote` with `safe=''` and `'/'`, `quote_plus`, JavaScript's
  `encodeURIComponent`; upper- and lower-case hex);
- base64 and base64url, of the value alone (with or without padding) and of the value at
  any byte offset inside a longer encoded string: for each of the three alignments only
  the characters that depend on the value's bytes alone are matched;
- hexadecimal (lower and upper case) of its UTF-8 bytes;
- shell-quoted as `set -x` prints it: bash `'a'\\''b'`, dash/busybox `'a'"'"'b'`, and
  bash's `$'…'` (in a UTF-8 and in the C locale);
- Python `repr` of the text and of its UTF-8 bytes, in either quote (what a traceback or a
  logged tuple shows);
- HTML-escaped (`html.escape`, with and without quotes, `&#39;`/`&#34;` spellings).

Values shorter than `MIN_SECRET_CHARS` are ignored (so are derived forms that short): a
three-letter "secret" would mangle every log. Text may also have been cut: a line at the
executors' per-line cap ends with `TRUNCATED_MARK`, and messages shorten long values with
an ellipsis (`...` or `…`). The fragment just before such a mark that is the start of a
form (at least `MIN_SECRET_CHARS` long) is masked too, so a cut cannot leave a secret's
prefix behind (labci's own messages cut long values that way). A value cut without any
mark is not caught.

What cannot be caught: a value the step transformed in any other way (reversed, split over
lines by `base64`'s wrapping past 57 bytes, interleaved with colour codes, hashed or
encrypted, printed one character per line, or only a piece of it).

Matching uses one compiled alternation of every form, longest first (`re` picks the first
alternative that matches, so the longest one at each position). Overlapping matches are all
masked: after each match the search resumes one character after its start, and the spans
are merged. A job has a handful of secrets, so a few hundred literal alternatives; the C
regex engine scans a line for them fast enough, and a line without a secret costs one
search. An Aho–Corasick automaton (pyahocorasick) would only pay off with thousands of
patterns, and would add a compiled dependency to every lab machine's runner.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

from labci_runner.executors.lines import TRUNCATED_MARK

MIN_SECRET_CHARS = 4
MASK = "***"
# Where text was cut: the executors' mark first (it contains an ellipsis itself).
CUT_MARKS = (TRUNCATED_MARK, "...", "…")
# encodeURIComponent leaves these unescaped, on top of Python's always-safe `_.-~`.
_JS_URI_SAFE = "!'()*"
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_JSON_U = re.compile(r"\\u[0-9a-f]{4}")
_BASH_ANSI_C = {
    "\x1b": "\\E",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    "'": "\\'",
}


class Redactor:
    """Masks one attempt's secrets; immutable and safe to share between tasks."""

    def __init__(
        self, secrets: Iterable[str] = (), *, cut_marks: Sequence[str] = CUT_MARKS
    ) -> None:
        forms = {form for value in _values(secrets) for form in printed_forms(value)}
        long_enough = (form for form in forms if len(form) >= MIN_SECRET_CHARS)
        self._forms = tuple(sorted(long_enough, key=lambda form: (-len(form), form)))
        self._pattern = re.compile("|".join(map(re.escape, self._forms))) if self._forms else None
        self._cuts = re.compile("|".join(map(re.escape, cut_marks)))
        # Every MIN_SECRET_CHARS-long piece of a form: text before a cut mark that ends in
        # none of them cannot end with a form's prefix (a quick test for common "...").
        self._tails = {
            form[i : i + MIN_SECRET_CHARS]
            for form in self._forms
            for i in range(len(form) - MIN_SECRET_CHARS + 1)
        }

    def __bool__(self) -> bool:
        """False when there is nothing to redact (no secret long enough)."""
        return self._pattern is not None

    def redact(self, text: str) -> str:
        """`text` with every form of every secret (and a secret's prefix at a cut) masked."""
        if self._pattern is None:
            return text
        spans = _matches(self._pattern, text)
        for cut in self._cuts.finditer(text):
            fragment = self._cut_fragment(text, cut.start())
            if fragment is not None:
                spans.append(fragment)
        if not spans:
            return text
        return _mask(text, spans)

    def redact_json(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string and every dict key redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {
                self.redact(k) if isinstance(k, str) else k: self.redact_json(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact_json(item) for item in value]
        return value

    def _cut_fragment(self, text: str, cut_at: int) -> tuple[int, int] | None:
        """The span of the longest form prefix ending at `cut_at`, if one is long enough."""
        # A cut inside a multi-byte character leaves U+FFFD after the fragment.
        end = len(text[:cut_at].rstrip("\ufffd"))
        if text[max(end - MIN_SECRET_CHARS, 0) : end] not in self._tails:
            return None
        start = end
        for form in self._forms:
            for size in range(min(len(form) - 1, end), MIN_SECRET_CHARS - 1, -1):
                if end - size < start and text.startswith(form[:size], end - size):
                    start = end - size
                    break
        return (start, cut_at) if start < end else None


def printed_forms(value: str) -> set[str]:
    """Every spelling of `value` the module docstring lists (short ones included)."""
    data = value.encode("utf-8", "surrogatepass")
    forms = {value, html.escape(value, quote=False), html.escape(value)}
    forms.add(html.escape(value).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"))
    forms |= _json_forms(value)
    forms |= _url_forms(value)
    forms |= _base64_forms(data)
    forms |= {data.hex(), data.hex().upper()}
    forms |= _shell_forms(value, data)
    forms |= _repr_forms(value, data)
    return forms


def _values(secrets: Iterable[str]) -> set[str]:
    """The secrets long enough to redact, and the lines of multi-line ones."""
    values = set()
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        values.add(secret)
        for line in secret.splitlines():
            if len(line.strip()) >= MIN_SECRET_CHARS:
                values.add(line.strip())
    return values


def _json_forms(value: str) -> set[str]:
    ascii_form = json.dumps(value)[1:-1]
    forms = {ascii_form, json.dumps(value, ensure_ascii=False)[1:-1]}
    forms |= {form.replace("/", "\\/") for form in forms}
    forms.add(_JSON_U.sub(lambda m: "\\u" + m.group()[2:].upper(), ascii_form))
    return forms


def _url_forms(value: str) -> set[str]:
    forms = set()
    for safe in ("", "/", _JS_URI_SAFE):
        forms |= {quote(value, safe=safe), quote_plus(value, safe=safe)}
    return forms | {_PERCENT.sub(lambda m: m.group().lower(), form) for form in forms}


def _base64_forms(data: bytes) -> set[str]:
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        if offset == 0:
            forms |= {encoded, encoded.rstrip("=")}
        # Character i covers bits [6i, 6i+6); keep those inside the value's bits.
        first = -(-8 * offset // 6)
        last = (8 * (offset + len(data))) // 6
        forms.add(encoded[first:last])
    return forms | {form.replace("+", "-").replace("/", "_") for form in forms}


def _shell_forms(value: str, data: bytes) -> set[str]:
    """How `set -x` quotes the value: '…' with the quote spliced in, or bash's $'…'."""
    utf8 = "".join(_BASH_ANSI_C.get(c, c if c.isprintable() else _octal(c)) for c in value)
    c_locale = "".join(
        _BASH_ANSI_C.get(chr(b), chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in data
    )
    bash_quote = value.replace("'", "'\\''")
    dash_quote = value.replace("'", "'\"'\"'")
    return {utf8, c_locale, bash_quote, dash_quote}


def _octal(char: str) -> str:
    return "".join(f"\\{b:03o}" for b in char.encode("utf-8", "surrogatepass"))


def _repr_forms(value: str, data: bytes) -> set[str]:
    """The inside of repr() in each quote repr may pick (it depends on the whole string)."""
    # With both quote characters after it, repr quotes with ' and escapes the '.
    forms = {repr(value + "'\"")[1:-4], repr(data + b"'\"")[2:-4]}
    if '"' not in value:
        # With a ' but no ", repr quotes with " and leaves the ' alone.
        forms |= {repr(value + "'")[1:-2], repr(data + b"'")[2:-2]}
    return forms


def _matches(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    spans = []
    position = 0
    # Resuming one past each match's start also finds a match that begins inside it.
    while (match := pattern.search(text, position)) is not None:
        spans.append(match.span())
        position = match.start() + 1
    return spans


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each run of overlapping or touching spans replaced by one MASK."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces = []
    cursor = 0
    for start, end in merged:
        pieces += [text[cursor:start], MASK]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
