"""The README's quickstart is a test: its demo command runs the whole loop and prints a
passing check for main and for the pull request, with metric values; its test command is
the one CI runs."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- quickstart -->", 1)[1].split("<!-- /quickstart -->", 1)[0]
    fenced = re.search(r"```(?:bash|sh)?\n(.*?)```", block, re.S)
    assert fenced, "the quickstart block holds a fenced code block"
    return [
        line.split("#", 1)[0].strip()
        for line in fenced.group(1).splitlines()
        if line.split("#", 1)[0].strip()
    ]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_second():
    demo, tests = quickstart_commands()
    assert demo == "bash scripts/demo.sh"
    assert tests == "bash scripts/test.sh"
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_demo_command_shows_two_passing_checks_with_metrics(tmp_path):
    demo, _ = quickstart_commands()
    # As on a fresh machine: embedded Redis and SQLite, nothing configured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABCI_") and k != "VIRTUAL_ENV"}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    done = subprocess.run(
        # A relative state directory, as the default `.labci-dev` is.
        [
            *shlex.split(demo),
            "--exit",
            "--state-dir",
            os.path.relpath(tmp_path / "state", ROOT),
            "--timeout",
            "240",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    rows = [
        line.split()
        for line in out.splitlines()
        if "labci/train/digits" in line and "success" in line
    ]
    assert [row[0] for row in rows if row[0] in ("main", "PR")] == ["main", "PR"]
    metrics_block = out.split("\nMetrics\n", 1)[1].split("\n\n", 1)[0]
    metrics = {line.split()[0]: line.split()[1:] for line in metrics_block.splitlines()[1:]}
    assert set(metrics) == {"accuracy", "loss"}
    base, head, _ = (float(v) for v in metrics["accuracy"])
    assert 0.5 < base < 1.0
    assert 0.5 < head < 1.0
    assert "waiting for both checks" in out
    # The demo makes an administrator and says how to sign in; the password file is private.
    sign_in = re.search(r"sign in at (\S+)/login as demo with password (\S+) \(kept in", out)
    assert sign_in, out
    secret_file = tmp_path / "state" / "demo-admin-password"
    assert secret_file.read_text().strip() == sign_in.group(2)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    table = out.split("The pull request's comment (its metric table)\n", 1)[1]
    accuracy = next(line for line in table.splitlines() if "`accuracy`" in line)
    assert "**improved**" in accuracy


def test_validate_example_prints_what_the_readme_shows():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- validate -->", 1)[1].split("<!-- /validate -->", 1)[0]
    fenced = re.search(r"```console\n(.*?)```", block, re.S)
    assert fenced, "the validate block holds a fenced console block"
    command, *expected = fenced.group(1).rstrip("\n").splitlines()
    args = shlex.split(command.removeprefix("$ "))
    assert args[:3] == ["uv", "run", "labci"]
    done = subprocess.run(
        [sys.executable, "-m", "labci_server.cli", *args[3:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.splitlines()) == (0, expected)


def test_workflows_in_the_readme_are_valid():
    from labci_spec import load_workflow

    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "jobs:" in b]
    assert blocks
    for text in blocks:
        workflow = load_workflow(text, ".labci/train.yml")
        assert workflow.jobs
