"""Collecting artifacts from an output directory that untrusted code wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from labci_runner.artifacts import collect_artifacts, file_chunks


@pytest.fixture
def output(tmp_path: Path) -> Path:
    out = tmp_path / "output"
    (out / "plots" / "deep").mkdir(parents=True)
    (out / "plots" / "loss.png").write_bytes(b"png-1")
    (out / "plots" / "acc.png").write_bytes(b"png-22")
    (out / "plots" / "deep" / "x.png").write_bytes(b"png-333")
    (out / "model.pt").write_bytes(b"weights")
    return out


def test_globs_pick_regular_files_in_path_order(output: Path) -> None:
    found = collect_artifacts(output, ["plots/*.png", "model.pt"], 1024)
    assert found.files == [("model.pt", 7), ("plots/acc.png", 6), ("plots/loss.png", 5)]
    assert found.problems == []
    assert collect_artifacts(output, ["plots/**"], 1024).files[-1] == ("plots/loss.png", 5)


def test_links_are_never_followed(output: Path, tmp_path: Path) -> None:
    token = tmp_path / "runner.json"
    token.write_text('{"runner_token": "labcirun_secret"}')
    (output / "token.txt").symlink_to(token)  # a link to the runner's token
    (output / "alias.pt").symlink_to(output / "model.pt")  # a link that stays inside
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(b"host bytes")
    (output / "plots" / "linked").symlink_to(elsewhere)  # an intermediate directory link
    found = collect_artifacts(output, ["*.txt", "*.pt", "plots/**"], 10_000)
    assert [path for path, _ in found.files] == [
        "model.pt",
        "plots/acc.png",
        "plots/deep/x.png",
        "plots/loss.png",
    ]
    assert found.problems == [
        "artifact alias.pt: links are not kept",
        "artifact token.txt: path escapes workspace",
        "artifact plots/linked/: path escapes workspace (a link to a directory)",
    ]


def test_files_past_max_size_are_not_kept(output: Path) -> None:
    found = collect_artifacts(output, ["**"], 13)
    assert found.files == [("model.pt", 7), ("plots/acc.png", 6)]
    assert found.problems == ["2 artifact(s) not kept: over max-size (13 bytes)"]


async def test_a_file_swapped_for_a_link_after_collection_is_refused(
    output: Path, tmp_path: Path
) -> None:
    (output / "model.pt").unlink()
    (output / "model.pt").symlink_to(tmp_path)  # raced in between collect and read
    with pytest.raises(OSError, match="Too many levels of symbolic links"):  # O_NOFOLLOW
        async for _ in file_chunks(output, "model.pt"):
            pass
