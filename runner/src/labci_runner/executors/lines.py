"""A step's output as lines, from a byte stream read in chunks of any size (a pipe's reads,
Docker's frames): both executors split it here, so a line means the same under each.

A line over the limit is cut, marked once (TRUNCATED_MARK) and the rest of it dropped up to
its newline. A line is assembled across chunks, never split where a chunk ends: a secret
printed in two writes still arrives whole, and is redacted whole.

A progress bar (tqdm, pip, curl) redraws itself with carriage returns and may print no
newline for hours: kept as is, its one "line" would pass the limit, be cut, and lose the
bar's final state. So only the last whole drawing before the last carriage return is kept
with what follows it, and the line stays about two drawings long. Drawings are dropped,
never merged: a merge (a shorter drawing over a longer one, as a terminal shows it) could
leave part of a secret that the redactor, which sees only what is sent, no longer
recognises. The page shows what is kept as a terminal would (`web/terminal.py`, on the
server, after redaction)."""

from __future__ import annotations

TRUNCATED_MARK = " …[line truncated]"


class LineSplitter:
    def __init__(self, max_line_bytes: int) -> None:
        self.max = max_line_bytes
        self.buffer = bytearray()
        self.discarding = False

    def feed(self, chunk: bytes) -> list[str]:
        lines = []
        self.buffer += chunk
        while (end := self.buffer.find(b"\n")) >= 0:
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            if not self.discarding:
                lines.append(self._line(last_drawings(raw)))
            self.discarding = False
        if b"\r" in self.buffer:
            self.buffer = bytearray(last_drawings(bytes(self.buffer)))
        if len(self.buffer) > self.max:
            if not self.discarding:
                lines.append(self._line(bytes(self.buffer)))
            self.discarding = True
            self.buffer.clear()
        return lines

    def close(self) -> list[str]:
        rest, self.buffer = bytes(self.buffer), bytearray()
        return [self._line(last_drawings(rest))] if rest and not self.discarding else []

    def _line(self, raw: bytes) -> str:
        if len(raw) > self.max:
            return decode(raw[: self.max]) + TRUNCATED_MARK
        return decode(raw)


def last_drawings(raw: bytes) -> bytes:
    """`raw` with every drawing before its last whole one dropped: that drawing, the last
    carriage return and what follows it (the tail may still be arriving, and may end
    inside a character). Empty drawings (`\\r\\r`) do not count."""
    parts = raw.split(b"\r")
    if len(parts) < 3:
        return raw
    whole = [part for part in parts[:-1] if part]
    return (whole[-1] if whole else b"") + b"\r" + parts[-1]


def decode(raw: bytes) -> str:
    """A line's text: its trailing carriage return (a `\\r\\n` ending) is no drawing."""
    return raw.decode("utf-8", errors="replace").rstrip("\r")
