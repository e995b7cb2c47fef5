"""`labci validate` as an author runs it on a file with the format's new keys and with
errors of both kinds: every error in one run, and a summary that shows adaptive repeats.

(The command lives in labci_server; these tests run it as a process, as a person does.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spec_corpus import ISSUE_FILE, job_with


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labci_server.cli", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_one_run_shows_schema_and_rule_errors_together(tmp_path: Path) -> None:
    path = tmp_path / "train.yml"
    path.write_text(ISSUE_FILE, encoding="utf-8")
    done = validate(path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{path}:4:5: error: jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)",
        "        runs_on: gpu",
        "        ^",
        f"{path}:5:13: error: jobs.train.needs[0]: unknown job 'nope'",
        "        needs: [nope]",
        "                ^",
        f"{path}:8:41: error: jobs.train.steps[0].run: `matrix.sed`: the matrix has no 'sed'"
        " (did you mean 'seed'?)",
        "          - run: python train.py --seed ${{ matrix.sed }}",
        " " * 44 + "^",
        f"{path}:9:24: error: jobs.train.metrics.repeats: 'seeds' is not an axis of the job's"
        " matrix (axes: seed)",
        "        metrics: {repeats: seeds}",
        " " * 27 + "^",
        "1 of 1 workflow files have errors (4 in all)",
    ]


def test_the_summary_shows_how_far_repeats_may_grow(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yml"
    path.write_text(
        job_with(
            "strategy: {matrix: {seed: [0, 1, 2], lr: [0.1, 0.01]}}",
            "metrics: {repeats: {axis: seed, max: 10}, alpha: 0.01}",
        ),
        encoding="utf-8",
    )
    done = validate(path)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines() == [
        f"{path}: ok — workflow 'sweep' on push",
        "  train: 6 instances, matrix seed: 3, lr: 2, repeats: seed (up to 10), on [gpu]",
        "1 workflow file ok, 1 job",
    ]
