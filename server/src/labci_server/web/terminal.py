"""How a log line looks on a terminal: a carriage return moves back to the line's start and
what follows overwrites what was there. A progress bar (tqdm, pip, curl) redraws itself
that way, many times per line; the page shows the last drawing, as a terminal would, and
the raw download keeps every byte. ANSI colours are drawn in the browser (ansi_up)."""

from __future__ import annotations

import time


def as_terminal_shows(text: str) -> str:
    if "\r" not in text:
        return text
    shown = ""
    for part in text.split("\r"):
        # Escape codes are counted as columns: a bar redraws its whole width each time,
        # so the last drawing covers the ones before whatever their colours.
        shown = part + shown[len(part) :]
    return shown


def clock(ts: float) -> str:
    """A line's time of day (UTC, to the millisecond), shown when timestamps are on; "?"
    for a time no clock can show (a runner's bad value must not break the page)."""
    try:
        whole = int(ts)
        return time.strftime("%H:%M:%S", time.gmtime(whole)) + f".{int((ts - whole) * 1000):03d}"
    except (OverflowError, ValueError, OSError):
        return "?"
