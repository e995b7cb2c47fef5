"""deploy/grafana/labci.json asks only for metrics labci exposes (issue 12)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def test_dashboard_queries_name_real_metrics():
    dashboard = json.loads((ROOT / "deploy/grafana/labci.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    sources = "".join(
        p.read_text()
        for p in [
            ROOT / "server/src/labci_server/operations/metrics.py",
            ROOT / "runner/src/labci_runner/telemetry.py",
        ]
    )
    names = {n for e in exprs for n in re.findall(r"\blabci_[a-z_]+", e)}
    assert len(names) >= 12
    for name in sorted(names):
        base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
        assert f'"{base}"' in sources or f'"{name}"' in sources, name
