"""A job's reproducibility record as a reader wants it (the run page): labelled rows in a
fixed order, values in words and units (`A100 80 GB (gpu 0)`, `seed=1, lr=0.1`), times as
dates, not the raw JSON the runner sent. Fields this module does not know still show, by
their own name, after the known ones: a newer runner's record loses nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Shown = Callable[[Any], str]


def _when(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _plain(value)
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
    except (OverflowError, ValueError, OSError):  # a runner's bad value: shown, not a 500
        return _plain(value)


def _pairs(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "—"
    return _plain(value)


def _gpus(value: Any) -> str:
    if not isinstance(value, list):
        return _plain(value)
    shown = []
    for gpu in value:
        if not isinstance(gpu, dict):
            shown.append(_plain(gpu))
            continue
        model = gpu.get("model") or "GPU"
        memory = gpu.get("memory_mib")
        size = f" {memory / 1024:.0f} GB" if isinstance(memory, int | float) and memory else ""
        shown.append(f"{model}{size} (gpu {gpu.get('id', '?')})")
    return "; ".join(shown) or "none"


def _percent(value: Any) -> str:
    return f"{value:.0f} %" if isinstance(value, int | float) else _plain(value)


def _mib(value: Any) -> str:
    return f"{value:,.0f} MiB" if isinstance(value, int | float) else _plain(value)


def _plain(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return _pairs(value)
    return str(value)


# (field, label, how shown), in the order a reader checks them: what code, what matrix
# values, where and in what it ran, on which GPUs, when.
KNOWN: tuple[tuple[str, str, Shown], ...] = (
    ("commit", "commit", _plain),
    ("workflow", "workflow file", _plain),
    ("workflow_sha256", "workflow file sha256", _plain),
    ("matrix", "matrix (seeds)", _pairs),
    ("runner", "runner", _plain),
    ("runner_labels", "runner labels", _plain),
    ("host", "host", _plain),
    ("executor", "executor", _plain),
    ("image", "image", _plain),
    ("image_digest", "image digest", _plain),
    ("image_id", "image id", _plain),
    ("limits", "limits", _pairs),
    ("gpus", "GPUs", _gpus),
    ("driver_version", "driver", _plain),
    ("cuda_version", "CUDA", _plain),
    ("gpu_util_mean", "GPU use (mean)", _percent),
    ("gpu_mem_peak_mib", "GPU memory (peak)", _mib),
    ("started_at", "started", _when),
    ("finished_at", "finished", _when),
)


def readable_record(record: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) rows; empty for a job that kept no record."""
    if not record:
        return []
    rows = [(label, shown(record[key])) for key, label, shown in KNOWN if key in record]
    known = {key for key, _, _ in KNOWN}
    rest = sorted(key for key in record if key not in known)
    rows += [
        (key.replace("_", " "), _when(record[key]) if key.endswith("_at") else _plain(record[key]))
        for key in rest
    ]
    started, finished = record.get("started_at"), record.get("finished_at")
    if isinstance(started, int | float) and isinstance(finished, int | float):
        rows.append(("took", f"{finished - started:.1f} s"))
    return rows
