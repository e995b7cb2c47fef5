"""The runner's operations surface (issue 12): GPU metrics read from its probe at scrape
time (a real nvidia-smi-format executable), the health record, `--version`, JSON logs."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_runner_gpus import fake_smi

from labci_runner.cli import main
from labci_runner.gpus import RunnerGpus, SmiProbe
from labci_runner.settings import Settings
from labci_runner.telemetry import (
    JsonFormatter,
    RunnerCollector,
    check_health,
    heartbeat_done,
)

MIB = 1024 * 1024


def scrape(settings, gpus) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(RunnerCollector(settings, gpus))
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_gpu_utilisation_and_memory_per_gpu(tmp_path):
    probe = SmiProbe(command=fake_smi(tmp_path, "workstation.csv"))
    gpus = RunnerGpus(probe, probe.inventory(), unhealthy={"1": "left-over process"})
    got = scrape(Settings(name="box", workdir=tmp_path), gpus)
    g0 = (("gpu", "0"), ("model", "NVIDIA GeForce RTX 3090"))
    g1 = (("gpu", "1"), ("model", "NVIDIA GeForce RTX 4090"))
    assert got[("labci_runner_gpu_utilization_ratio", g0)] == 0.03
    assert got[("labci_runner_gpu_memory_used_bytes", g0)] == 1187 * MIB
    assert got[("labci_runner_gpu_memory_total_bytes", g1)] == 24564 * MIB
    assert got[("labci_runner_gpu_healthy", g0)] == 1
    assert got[("labci_runner_gpu_healthy", g1)] == 0
    assert got[("labci_runner_info", (("name", "box"), ("version", "0.2.0")))] == 1


def test_health_follows_heartbeats(tmp_path):
    settings = Settings(workdir=tmp_path, heartbeat_interval_s=2.0)
    missing = check_health(settings)
    heartbeat_done(settings, now=1000.0)
    fresh = check_health(settings, now=1005.0)
    stale = check_health(settings, now=1000.0 + 5 * 2.0 + 10.0 + 1)
    assert missing[0] is False
    assert missing[1].startswith(f"no heartbeat recorded in {tmp_path / 'health.json'}")
    assert fresh == (True, "last heartbeat 5.0s ago")
    assert stale == (False, "last heartbeat 21s ago (more than 20s)")


def test_health_command_and_version(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABCI_RUNNER_WORKDIR", str(tmp_path))
    heartbeat_done(Settings(workdir=tmp_path))
    with pytest.raises(SystemExit) as healthy:
        main(["health"])
    with pytest.raises(SystemExit) as shown:
        main(["--version"])
    out = capsys.readouterr().out.splitlines()
    assert (healthy.value.code, shown.value.code) == (0, 0)
    assert out[0].startswith("last heartbeat ")
    assert out[1] == "labci-runner 0.2.0"


def test_json_log_lines():
    import sys

    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.getLogger("labci_runner.x").makeRecord(
        "labci_runner.x", logging.WARNING, __file__, 1, "job %d: %s", (7, "odd"), exc_info
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "warning",
        "labci_runner.x",
        "job 7: odd",
    )
    assert entry["exception"].endswith("ValueError: boom")
