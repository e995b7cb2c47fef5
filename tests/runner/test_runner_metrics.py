"""Reading metrics files (confined, capped, parsed by suffix), `::metric` lines, merging."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labci_runner.errors import MetricsInvalid
from labci_runner.metrics import MetricLines, merge_metrics, read_metrics, read_metrics_files


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


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("metrics.json", '{"acc": 0.91, "eval": {"f1": 0.5}}', {"acc": 0.91, "eval.f1": 0.5}),
        ("metrics.yaml", "acc: 0.91\neval:\n  f1: 0.5\n", {"acc": 0.91, "eval.f1": 0.5}),
        ("metrics.YML", "acc: 0.91", {"acc": 0.91}),
        ("log/train.csv", "epoch,loss\n1,0.9\n2,0.4\n", {"epoch": 2.0, "loss": 0.4}),
    ],
    ids=["json", "yaml", "yml-upper", "csv-last-row"],
)
async def test_each_format_is_read_by_its_suffix(
    output: Path, file: str, content: str, expected: dict[str, float]
) -> None:
    (output / file).parent.mkdir(exist_ok=True)
    (output / file).write_text(content)
    assert await read_metrics(output, file) == expected


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        ("metrics.yaml", "a: &x 1\nb: *x\n", "metrics invalid: YAML anchors and aliases"),
        ("metrics.csv", "acc\nhigh\n", "metrics invalid: 'acc' in row 2 is not a number"),
        ("metrics.txt", "acc=1", "metrics invalid: metrics.txt: unsupported file type"),
    ],
    ids=["yaml-anchor", "csv-text", "unsupported-suffix"],
)
async def test_bad_content_gives_the_parser_reason(
    output: Path, file: str, content: str, expected: str
) -> None:
    (output / file).write_text(content)
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics(output, file)
    assert str(caught.value).startswith(expected)


async def test_several_files_are_merged(output: Path) -> None:
    (output / "eval.json").write_text('{"eval": {"acc": 0.9}}')
    (output / "train.csv").write_text("epoch,loss\n1,0.7\n2,0.3\n")
    (output / "extra.yaml").write_text("time_s: 12")
    metrics = await read_metrics_files(output, ["eval.json", "train.csv", "extra.yaml"])
    assert metrics == {"eval.acc": 0.9, "epoch": 2.0, "loss": 0.3, "time_s": 12.0}
    assert await read_metrics_files(output, []) == {}


async def test_a_metric_in_two_files_is_refused(output: Path) -> None:
    (output / "a.json").write_text('{"acc": 0.9, "loss": 0.1}')
    (output / "b.csv").write_text("f1,acc\n0.5,0.8\n")
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics_files(output, ["a.json", "b.csv"])
    assert str(caught.value) == "metrics invalid: 'acc' is reported by both a.json and b.csv"


async def test_every_file_is_confined(output: Path, tmp_path: Path) -> None:
    (output / "a.json").write_text('{"acc": 0.9}')
    (tmp_path / "secret.yaml").write_text("stolen: 1")
    (output / "b.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics_files(output, ["a.json", "b.yaml"])
    assert str(caught.value) == "metrics invalid: b.yaml: path escapes workspace"


async def test_files_together_report_at_most_max_metrics(output: Path) -> None:
    for part in range(2):
        names = [f"m{part}_{i}" for i in range(600)]
        (output / f"{part}.csv").write_text(",".join(names) + "\n" + ",".join("1" for _ in names))
    with pytest.raises(MetricsInvalid) as caught:
        await read_metrics_files(output, ["0.csv", "1.csv"])
    assert str(caught.value) == "metrics invalid: more than 1000 metrics in all"


def test_metric_lines_are_collected_in_order_and_the_latest_value_wins() -> None:
    lines = MetricLines()
    for line in [
        "epoch 1",
        "::metric name=loss::0.9\n",
        "::metric name=acc::0.5\r\n",
        "  ::metric name=ignored::1",
        "::warning::not a metric",
        "::metric name=loss::0.4",
    ]:
        lines.feed(line)
    assert lines.metrics == {"loss": 0.4, "acc": 0.5}
    assert list(lines.metrics) == ["loss", "acc"]
    assert lines.error is None


def test_the_first_malformed_metric_line_is_kept_and_collection_goes_on() -> None:
    lines = MetricLines()
    lines.feed("::metric name=acc::0.9")
    lines.feed("::metric name=loss::NaN")
    lines.feed("::metric name=f1::oops")
    lines.feed("::metric name=f1::0.5")
    assert lines.error == (
        "metrics invalid: 'loss' is NaN, not a finite number in '::metric name=loss::NaN'"
    )
    assert lines.metrics == {"acc": 0.9, "f1": 0.5}


def test_metric_lines_name_at_most_max_metrics() -> None:
    lines = MetricLines()
    for i in range(1001):
        lines.feed(f"::metric name=m{i}::{i}")
    lines.feed("::metric name=m0::-1")  # updating a known name is still fine
    assert lines.error == "metrics invalid: more than 1000 metrics reported by ::metric lines"
    assert len(lines.metrics) == 1000
    assert lines.metrics["m0"] == -1.0
    assert "m1000" not in lines.metrics


def test_metrics_property_is_a_copy() -> None:
    lines = MetricLines()
    lines.feed("::metric name=acc::1")
    lines.metrics["acc"] = 0.0
    assert lines.metrics == {"acc": 1.0}


def test_merge_metrics_joins_files_and_lines() -> None:
    merged = merge_metrics({"eval.acc": 0.9}, {"loss": 0.3})
    assert merged == {"eval.acc": 0.9, "loss": 0.3}


@pytest.mark.parametrize(
    ("files", "lines", "message"),
    [
        (
            {"acc": 0.9},
            {"loss": 0.1, "acc": 0.8},
            "metrics invalid: 'acc' is reported both by a metrics file and by a ::metric line",
        ),
        (
            {f"f{i}": 1.0 for i in range(600)},
            {f"l{i}": 1.0 for i in range(401)},
            "metrics invalid: more than 1000 metrics in all",
        ),
    ],
    ids=["clash", "too-many"],
)
def test_merge_metrics_refuses(
    files: dict[str, float], lines: dict[str, float], message: str
) -> None:
    with pytest.raises(MetricsInvalid) as caught:
        merge_metrics(files, lines)
    assert str(caught.value) == message
