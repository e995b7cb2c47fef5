"""What an operator sees of a runner: its logs' format, its Prometheus metrics, its health.

- `LABCI_LOG_FORMAT=json`: one JSON object per log line (as the server's).
- `LABCI_RUNNER_METRICS_ADDRESS=HOST:PORT` serves Prometheus metrics from prometheus_client's
  own HTTP server (a thread): per GPU its utilisation, memory used and total and health,
  read from the GPU probe at scrape time (NVML or nvidia-smi; LABCI_RUNNER_GPUS names GPUs
  without measuring them), and when the last heartbeat got through. Off by default: a lab
  machine opens no port unless told.
- `labci-runner health` exits 0 when a heartbeat got through within `HEALTHY_BEATS`
  intervals; each successful heartbeat writes `<workdir>/health.json` for it (images'
  HEALTHCHECK and units' watchdogs use it, with no credential and no network).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from labci_runner.gpus import RunnerGpus
from labci_runner.settings import Settings

HEALTH_FILE = "health.json"
HEALTHY_BEATS = 5  # a runner is unhealthy after this many heartbeat intervals without one
HEALTH_GRACE_S = 10.0
MIB = 1024 * 1024
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # httpx says every request at INFO: one line per heartbeat and per log batch.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --- health -------------------------------------------------------------------------------


def health_path(settings: Settings) -> Path:
    return settings.workdir / HEALTH_FILE


def heartbeat_done(settings: Settings, now: float | None = None) -> None:
    """A heartbeat got through: say so where `labci-runner health` looks (atomically)."""
    path = health_path(settings)
    record = json.dumps({"heartbeat_at": time.time() if now is None else now, "pid": os.getpid()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".health-")
    with os.fdopen(fd, "w") as handle:
        handle.write(record)
    os.replace(tmp, path)
    LAST_HEARTBEAT.value = json.loads(record)["heartbeat_at"]


def check_health(settings: Settings, now: float | None = None) -> tuple[bool, str]:
    """Whether this runner's heartbeats get through, and what to print."""
    path = health_path(settings)
    try:
        record = json.loads(path.read_text())
        at = float(record["heartbeat_at"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no heartbeat recorded in {path}: {exc}"
    age_s = (time.time() if now is None else now) - at
    limit_s = HEALTHY_BEATS * settings.heartbeat_interval_s + HEALTH_GRACE_S
    if age_s > limit_s:
        return False, f"last heartbeat {age_s:.0f}s ago (more than {limit_s:.0f}s)"
    return True, f"last heartbeat {age_s:.1f}s ago"


# --- metrics ------------------------------------------------------------------------------


class _LastHeartbeat:
    value: float | None = None


LAST_HEARTBEAT = _LastHeartbeat()


class RunnerCollector(Collector):
    """Read at scrape time, from the metrics server's thread: the probe's calls block
    (nvidia-smi, NVML), which is fine there and never on the runner's event loop."""

    def __init__(self, settings: Settings, gpus: RunnerGpus | None) -> None:
        self.name = settings.name
        self.gpus = gpus

    def collect(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        info = InfoMetricFamily("labci_runner", "The runner's name and version.")
        info.add_metric([], {"name": self.name, "version": version("labci-runner")})
        yield info
        beat = GaugeMetricFamily(
            "labci_runner_last_heartbeat_timestamp_seconds",
            "When the runner's last heartbeat got through (Unix time).",
        )
        if LAST_HEARTBEAT.value is not None:
            beat.add_metric([], LAST_HEARTBEAT.value)
        yield beat
        yield from self._gpus()

    def _gpus(self) -> Iterator[GaugeMetricFamily]:
        labels = ["gpu", "model"]
        util = GaugeMetricFamily(
            "labci_runner_gpu_utilization_ratio",
            "GPU utilisation (0-1), as the driver says.",
            labels=labels,
        )
        used = GaugeMetricFamily(
            "labci_runner_gpu_memory_used_bytes", "GPU memory in use.", labels=labels
        )
        total = GaugeMetricFamily(
            "labci_runner_gpu_memory_total_bytes", "GPU memory.", labels=labels
        )
        healthy = GaugeMetricFamily(
            "labci_runner_gpu_healthy",
            "1 when the GPU is fit to take work, 0 when found unfit.",
            labels=labels,
        )
        if self.gpus is not None:
            inventory = self.gpus.inventory.gpus
            states = {s.id: s for s in self.gpus.probe.states([g.id for g in inventory])}
            unhealthy = dict(self.gpus.unhealthy)
            for gpu in inventory:
                key = [gpu.id, gpu.model or ""]
                healthy.add_metric(key, 0 if gpu.id in unhealthy else 1)
                if gpu.memory_mib is not None:
                    total.add_metric(key, gpu.memory_mib * MIB)
                state = states.get(gpu.id)
                if state is not None and state.utilization_pct is not None:
                    util.add_metric(key, state.utilization_pct / 100)
                if state is not None and state.memory_used_mib is not None:
                    used.add_metric(key, state.memory_used_mib * MIB)
        yield from (util, used, total, healthy)


def serve_metrics(settings: Settings, gpus: RunnerGpus | None) -> None:
    """Start the metrics server when LABCI_RUNNER_METRICS_ADDRESS is set."""
    if not settings.metrics_address:
        return
    host, _, port = settings.metrics_address.rpartition(":")
    REGISTRY.register(RunnerCollector(settings, gpus))
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")
