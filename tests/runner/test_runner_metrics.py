"""Reading the metrics file: confined to the output directory, capped, parsed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labci_runner.errors import MetricsInvalid
from labci_runner.metrics import read_metrics


@pytest.fixture
def output(tmp_path: Path) -> Path:
    path = tmp_path / "output"
    path.mkdir()
    return path


async def test_valid_file_is_parsed_and_flattened(output: Path) -> None:
    (output / "eval").mkdir()
    (output / "eval" / "metrics.json").write_text('{"acc": 0.91, "loss": {"train": 0.2}}')
    assert await read_metrics(output, "eval/metrics.json") == {"acc": 0.91, "loss.train": 0.2}


async def test_symlink_escaping_the_output_dir_is_refused(output: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"stolen": 1}')
    (output / "metrics.json").symlink_to(secret)
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics(output, "metrics.json")
    assert str(caught.value) == "metrics invalid: metrics.json: path escapes workspace"


async def test_symlink_inside_the_output_dir_is_followed(output: Path) -> None:
    (output / "real.json").write_text('{"acc": 1}')
    (output / "metrics.json").symlink_to(output / "real.json")
    assert await read_metrics(output, "metrics.json") == {"acc": 1.0}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda out: None, "metrics file not found: metrics.json"),
        (lambda out: (out / "metrics.json").write_text("{nope"), "metrics invalid: not valid JSON"),
        (lambda out: (out / "metrics.json").mkdir(), "metrics invalid: metrics.json: "),
        (
            lambda out: os.mkfifo(out / "metrics.json"),
            "metrics invalid: metrics.json: not a regular",
        ),
    ],
    ids=["missing", "bad-json", "directory", "fifo"],
)
async def test_unusable_files_give_a_reason(output: Path, setup: object, expected: str) -> None:
    setup(output)  # type: ignore[operator]
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics(output, "metrics.json")
    assert str(caught.value).startswith(expected)


async def test_oversized_file_is_refused_without_reading_it_all(output: Path) -> None:
    (output / "metrics.json").write_text('{"a": 1, "pad": "' + "x" * 5000 + '"}')
    with pytest.raises(MetricsInvalid, match="larger than 1000 bytes"):
        await read_metrics(output, "metrics.json", max_bytes=1000)
