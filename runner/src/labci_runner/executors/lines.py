"""A step's output as lines, from a byte stream read in chunks of any size (a pipe's reads,
Docker's frames): both executors split it here, so a line means the same under each.

A line over the limit is cut, marked once (TRUNCATED_MARK) and the rest of it dropped up to
its newline. A line is assembled across chunks, never split where a chunk ends: a secret
printed in two writes still arrives whole, and is redacted whole.

A progress bar (tqdm, pip, curl) redraws itself with carriage returns and may print no
newline for hours: kept as is, its one "line" would pass the limit, be cut, and lose the
bar's final state. So the drawings before the last carriage return are merged as a
terminal would show them (each overwrites the one before from the line's start), and the
line stays about one drawing long. What is stored still carries the last `\r`: the page
shows the line as a terminal would, and the raw log replays it as one."""

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
                lines.append(self._line(merged(raw)))
            self.discarding = False
        if b"\r" in self.buffer:
            self.buffer = bytearray(merged(bytes(self.buffer)))
        if len(self.buffer) > self.max:
            if not self.discarding:
                lines.append(self._line(bytes(self.buffer)))
            self.discarding = True
            self.buffer.clear()
        return lines

    def close(self) -> list[str]:
        rest, self.buffer = bytes(self.buffer), bytearray()
        return [self._line(merged(rest))] if rest and not self.discarding else []

    def _line(self, raw: bytes) -> str:
        if len(raw) > self.max:
            return decode(raw[: self.max]) + TRUNCATED_MARK
        return decode(raw)


def merged(raw: bytes) -> bytes:
    """`raw` with every drawing before its last carriage return merged into one, as a
    terminal shows them; the last `\\r` and what follows it are kept as they are (the tail
    may still be arriving, and may end inside a character)."""
    if raw.count(b"\r") < 2:
        return raw
    last = raw.rfind(b"\r")
    shown = ""
    # Whole drawings only: a carriage return is never inside a UTF-8 character, so each
    # piece before the last one decodes alone.
    for part in raw[:last].decode("utf-8", errors="replace").split("\r"):
        shown = part + shown[len(part) :]
    return shown.encode() + raw[last:]


def decode(raw: bytes) -> str:
    """A line's text: its trailing carriage return (a `\\r\\n` ending) is no drawing."""
    return raw.decode("utf-8", errors="replace").rstrip("\r")
