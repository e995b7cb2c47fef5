"""A step's output as lines (`LineSplitter`, both executors): whole across any chunking,
cut once over the cap, and a progress bar's redrawings merged as a terminal shows them, so
a bar that redraws for hours keeps its final state instead of being cut at the cap."""

from __future__ import annotations

from labci_runner.executors.lines import TRUNCATED_MARK, LineSplitter, merged


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


def test_redrawings_merge_as_a_terminal_shows_them() -> None:
    assert merged(b"\r 10%|#   |\r 50%|##  |\r100%|####|") == b" 50%|##  |\r100%|####|"
    # A shorter drawing leaves the end of the longer one before it, as on a terminal.
    assert merged(b"downloading 1000 files\rdone\rok") == b"doneloading 1000 files\rok"
    assert merged(b"plain") == b"plain"
    assert merged(b"one\rtwo") == b"one\rtwo"  # one carriage return: nothing to merge
    # Each drawing is whole text: a multi-byte bar character survives the merge.
    assert merged("\r█░\r██\r███".encode()) == "██\r███".encode()


def test_a_bar_redrawn_far_past_the_cap_keeps_its_last_drawing() -> None:
    lines = LineSplitter(1024)
    got = []
    for n in range(10_001):  # ~200 KB of redrawing without a newline
        got += lines.feed(f"\r{n / 100:6.2f}% |{'█' * (n // 1000)}".encode())
        assert len(lines.buffer) < 200  # one drawing and the last, never more
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
