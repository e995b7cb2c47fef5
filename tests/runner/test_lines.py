"""A step's output as lines (`LineSplitter`, both executors): whole across any chunking,
cut once over the cap, and a progress bar's earlier drawings dropped, so a bar that
redraws for hours keeps its final state instead of being cut at the cap, and a secret in a
drawing is never left half-overwritten where the redactor would miss it."""

from __future__ import annotations

from labci_runner.executors.lines import TRUNCATED_MARK, LineSplitter, last_drawings
from labci_runner.redact import Redactor


def test_a_line_is_never_split_where_a_chunk_ends() -> None:
    """Chunks end wherever the program's writes and the reads fell: a line (a secret
    printed in two writes, say) must still arrive whole, so it is redacted whole."""
    stream = "first\nsecret-in-two-writes\nünïcode\n".encode()
    for cut in range(1, len(stream)):
        lines = LineSplitter(64 * 1024)
        got = lines.feed(stream[:cut]) + lines.feed(stream[cut:]) + lines.close()
        assert got == ["first", "secret-in-two-writes", "ünïcode"], cut


def test_a_line_over_the_cap_is_cut_even_when_it_ends_in_a_later_chunk() -> None:
    lines = LineSplitter(10)
    got = lines.feed(b"x" * 8) + lines.feed(b"y" * 5 + b"\nnext\n") + lines.close()
    assert got == ["xxxxxxxxyy" + TRUNCATED_MARK, "next"]


def test_only_the_last_whole_drawing_and_the_tail_are_kept() -> None:
    assert last_drawings(b"\r 10%|#   |\r 50%|##  |\r100%|####|") == b" 50%|##  |\r100%|####|"
    assert last_drawings(b"plain") == b"plain"
    assert last_drawings(b"one\rtwo") == b"one\rtwo"  # one carriage return: nothing to drop
    assert last_drawings(b"abc\r\r") == b"abc\r"  # an empty drawing is no drawing
    assert last_drawings("\r█░\r██\r███".encode()) == "██\r███".encode()


def test_a_secret_in_a_redrawn_line_is_still_redacted_whole() -> None:
    """A shorter drawing over a longer one shows part of it on a terminal; the runner never
    builds that view (the redactor would not know the part), it keeps whole drawings."""
    redactor = Redactor(["SECRETVALUE99"])
    for chunks in (
        [b"SECRETVALUE99 10%\r", b"AB 50%\r", b"100%\n"],
        [b"SECRETVALUE99 10%\rAB 50%\n"],
        [b"x\rSECRETVALUE99\rAB\n"],
    ):
        lines = LineSplitter(1024)
        sent = [redactor.redact(line) for chunk in chunks for line in lines.feed(chunk)]
        assert len(sent) == 1
        assert "VALUE99" not in sent[0], sent
        assert "SECRET" not in sent[0], sent


def test_a_bar_redrawn_far_past_the_cap_keeps_its_last_drawing() -> None:
    lines = LineSplitter(1024)
    got = []
    for n in range(10_001):  # ~200 KB of redrawing without a newline
        got += lines.feed(f"\r{n / 100:6.2f}% |{'█' * (n // 1000)}".encode())
        assert len(lines.buffer) < 200  # the last whole drawing and the tail, never more
    got += lines.feed(b"\ntrained\n") + lines.close()
    assert len(got) == 2
    bar, after = got
    assert bar.endswith("\r100.00% |██████████")  # the page shows this; nothing was cut
    assert TRUNCATED_MARK not in bar
    assert after == "trained"


def test_a_windows_line_ending_is_no_redrawing() -> None:
    lines = LineSplitter(64)
    assert lines.feed(b"a\r\nb\r\n") == ["a", "b"]
    assert lines.feed(b"\r10%\r100%\r\n") == ["100%"]
