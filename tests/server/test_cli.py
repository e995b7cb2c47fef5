"""The `labci` command as a person uses it: validate, and clear errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

GOOD = (
    "name: ok\non: push\njobs:\n  a:\n    runs-on: [cpu, gpu]\n    steps:\n      - run: echo hi\n"
)
BAD = "name: bad\non: push\njobs:\n  a:\n    runs_on: cpu\n    timeout-minutes: two\n    steps:\n      - run: echo\n"


def labci(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labci_server.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_validate_reports_every_error_with_file_line_and_column(tmp_path):
    (tmp_path / ".labci").mkdir()
    (tmp_path / ".labci" / "good.yml").write_text(GOOD)
    (tmp_path / ".labci" / "bad.yml").write_text(BAD)
    done = labci("validate", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(
        line.startswith(".labci/bad.yml:5:5: error: ") and "did you mean 'runs-on'" in line
        for line in lines
    )
    assert any(line.startswith(".labci/bad.yml:6:22: error: ") and "two" in line for line in lines)
    assert ".labci/good.yml: ok — workflow 'ok': a on [cpu, gpu]" in lines


def test_validate_passes_on_good_files(tmp_path):
    (tmp_path / "w.yml").write_text(GOOD)
    done = labci("validate", str(tmp_path / "w.yml"))
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"{tmp_path / 'w.yml'}: ok — workflow 'ok': a on [cpu, gpu]",
    )


def test_serve_without_webhook_secret_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LABCI_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = labci("serve", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "labci: error: LABCI_WEBHOOK_SECRET is not set; `labci serve` refuses to accept unsigned webhooks"
    )
