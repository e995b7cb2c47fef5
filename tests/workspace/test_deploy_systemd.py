"""deploy/systemd's units pass `systemd-analyze verify` (unknown options, bad values,
missing executables), with the install paths pointed at this checkout's commands and the
runner template instantiated as an operator would (`labci-runner@gpu01`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.services import missing_service

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("template", "unit"),
    [
        ("labci-server.service", "labci-server.service"),
        ("labci-worker.service", "labci-worker.service"),
        ("labci-runner@.service", "labci-runner@gpu01.service"),
    ],
)
def test_unit_verifies(template: str, unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing_service("systemd-analyze", "install Debian's systemd package")
    text = (UNITS / template).read_text()
    text = text.replace("/opt/labci/bin/labci", str(BIN / "labci"))
    text = text.replace("/opt/labci-runner/bin/labci-runner", str(BIN / "labci-runner"))
    (tmp_path / unit).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr.strip()) == (0, "")


def test_units_are_hardened() -> None:
    for path in UNITS.glob("*.service"):
        options = {line.split("=", 1)[0] for line in path.read_text().splitlines() if "=" in line}
        assert {
            "User",
            "NoNewPrivileges",
            "ProtectSystem",
            "ReadWritePaths",
            "PrivateTmp",
        } <= options, path.name
