"""`labci demo`: an example experiment repository, a baseline on main and a pull request.

The experiment is real: logistic regression on scikit-learn's bundled digits data, on
CPU, writing accuracy and loss to `$LABCI_OUTPUT/metrics.json`. The pull request changes
the regularisation; the demo waits for both checks and prints them side by side.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from .db.engine import make_engine, make_sessionmaker
from .db.queries.jobs import jobs_of_runs
from .db.queries.outbox import commit_statuses, pull_request_comment
from .db.queries.repositories import find_repository
from .db.queries.runs import metrics_of_jobs, runs_for_commit
from .dev import DevStack
from .errors import ConfigError
from .forge.gitlocal_trigger import (
    install_hook,
    pull_request_event,
    register_hook,
    send_hook_event,
)

REPO_NAME = "digits-experiment"
CONTEXT = "labci/train/digits"
POLL_S = 0.5

TRAIN_PY = '''\
"""Train logistic regression on scikit-learn's digits and write metrics for labci."""
import argparse
import json
import pathlib

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()
config = json.loads(pathlib.Path("config.json").read_text())

x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.3, random_state=0)
model = LogisticRegression(C=config["C"], max_iter=config["max_iter"])
model.fit(x_train, y_train)
metrics = {
    "accuracy": accuracy_score(y_test, model.predict(x_test)),
    "loss": log_loss(y_test, model.predict_proba(x_test)),
}
print(f"C={config['C']}: accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}")
pathlib.Path(args.out).write_text(json.dumps(metrics))
'''

WORKFLOW = """\
name: train
on:
  push:
    branches: [main]
  pull_request:
    branches: [main]
jobs:
  digits:
    runs-on: [cpu]
    timeout-minutes: 10
    steps:
      - name: show the environment
        run: python --version && echo "commit $LABCI_COMMIT_SHA on $LABCI_BRANCH"
      - name: train
        run: python train.py --out "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
      compare:
        # Training is deterministic and the test set has 540 digits: the binomial noise
        # of an accuracy on 540 items is what a single run can be judged with.
        accuracy: {goal: max, tolerance: 0.5%, test-size: 540}
        loss: {goal: min, tolerance: 5%, gate: false}
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=labci demo", "-c", "user.email=demo@labci.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def create_repository(dev: DevStack) -> tuple[Path, Path]:
    """A fresh bare repository with the labci hook, and a work clone of it."""
    root = dev.state_dir / "repos"
    bare, work = root / f"{REPO_NAME}.git", root / "work" / REPO_NAME
    shutil.rmtree(bare, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    token = asyncio.run(_register(dev, bare.resolve()))
    install_hook(bare.resolve(), server_url=dev.url, token=token)
    git(root, "clone", "--quiet", str(bare), str(work))
    git(work, "checkout", "--quiet", "-b", "main")
    return bare.resolve(), work


async def _register(dev: DevStack, bare: Path) -> str:
    """`labci hook install --public`, in-process: the demo's repository is public."""
    engine = make_engine(dev.settings.database_url)
    try:
        return await register_hook(make_sessionmaker(engine), bare, public=True)
    finally:
        await engine.dispose()


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", message)
    return git(work, "rev-parse", "HEAD")


def push_baseline_and_pr(dev: DevStack, bare: Path, work: Path) -> tuple[str, str]:
    (work / ".labci").mkdir()
    (work / ".labci" / "train.yml").write_text(WORKFLOW)
    (work / "train.py").write_text(TRAIN_PY)
    (work / "config.json").write_text('{"C": 0.01, "max_iter": 200}\n')
    base = commit_all(work, "Baseline: logistic regression on digits")
    git(work, "push", "--quiet", "origin", "main")
    print(
        f"  pushed the baseline to main ({base[:7]}); the post-receive hook told labci", flush=True
    )
    git(work, "checkout", "--quiet", "-b", "stronger-model")
    (work / "config.json").write_text('{"C": 1.0, "max_iter": 400}\n')
    head = commit_all(work, "Weaker regularisation")
    git(work, "push", "--quiet", "origin", "stronger-model")
    send_hook_event(dev.url, bare, pull_request_event(bare, "stronger-model", "main"))
    print(f"  opened a pull request stronger-model → main ({head[:7]})", flush=True)
    return base, head


DEMO_ADMIN = "demo"


def demo_administrator(dev: DevStack) -> tuple[str, Path]:
    """The demo's administrator: made on the first demo of a state directory, its password
    kept beside the database (mode 0600) so a later demo signs in the same way."""
    from .auth import accounts
    from .errors import Conflict

    secret_file = dev.state_dir / "demo-admin-password"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(12) + "\n")
        secret_file.chmod(0o600)
    password = secret_file.read_text().strip()

    async def create() -> None:
        engine = make_engine(dev.settings.database_url)
        try:
            await accounts.create_local_user(
                make_sessionmaker(engine), login=DEMO_ADMIN, password=password, admin=True
            )
        except Conflict:
            pass  # made by an earlier demo in this state directory
        finally:
            await engine.dispose()

    asyncio.run(create())
    return password, secret_file


def run_demo(dev: DevStack, *, timeout_s: float) -> bool:
    password, secret_file = demo_administrator(dev)
    print(
        f"labci demo: sign in at {dev.url}/login as {DEMO_ADMIN} with password {password} "
        f"(kept in {secret_file})",
        flush=True,
    )
    print("labci demo: creating the example repository digits-experiment…", flush=True)
    bare, work = create_repository(dev)
    base, head = push_baseline_and_pr(dev, bare, work)
    print("labci demo: waiting for both checks…", flush=True)
    results = asyncio.run(wait_for_checks(dev, bare, {"main": base, "PR #1": head}, timeout_s))
    print_table(results)
    comment = asyncio.run(wait_for_comment(dev, bare, pr_number=1, head=head))
    if comment:
        print("\nThe pull request's comment (its metric table)")
        lines = comment.splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("| metric")), None)
        for line in lines[start:] if start is not None else []:
            if not line.startswith("|"):
                break
            print(f"  {line}")
    return all(row["state"] == "success" for row in results.values())


async def wait_for_checks(
    dev: DevStack, bare: Path, commits: dict[str, str], timeout_s: float
) -> dict[str, dict[str, object]]:
    engine = make_engine(dev.settings.database_url)
    sessions = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout_s
    shown: dict[str, str] = {}
    try:
        while True:
            results = await _snapshot(sessions, str(bare), commits)
            for label, row in results.items():
                line = f"{row['job_state']}"
                if shown.get(label) != line:
                    shown[label] = line
                    print(
                        f"  [{time.strftime('%H:%M:%S')}] {label:6} {CONTEXT}: {line}", flush=True
                    )
            if all(row["state"] in ("success", "failure", "error") for row in results.values()):
                return results
            if dead := dev.dead():
                raise ConfigError(f"{', '.join(dead)} stopped; see {dev.state_dir}/*.log")
            if time.monotonic() > deadline:
                raise ConfigError(f"checks did not finish within {timeout_s:.0f}s; see {dev.url}")
            await asyncio.sleep(POLL_S)
    finally:
        await engine.dispose()


async def wait_for_comment(
    dev: DevStack, bare: Path, *, pr_number: int, head: str, timeout_s: float = 20.0
) -> str | None:
    """The pull request's labci comment once it shows `head` (the outbox sends it)."""
    engine = make_engine(dev.settings.database_url)
    sessions = make_sessionmaker(engine)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            async with sessions() as session:
                repo = await find_repository(session, provider="git", full_name=str(bare))
                row = (
                    await pull_request_comment(
                        session, repository_id=repo.id or 0, pr_number=pr_number
                    )
                    if repo
                    else None
                )
            if row is not None and head[:7] in row.body:
                return row.body
            await asyncio.sleep(POLL_S)
    finally:
        await engine.dispose()
    return None


async def _snapshot(
    sessions: async_sessionmaker[AsyncSession], repo_name: str, commits: dict[str, str]
) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    async with sessions() as session:
        repo = await find_repository(session, provider="git", full_name=repo_name)
        for label, sha in commits.items():
            row: dict[str, object] = {
                "sha": sha,
                "state": "waiting",
                "job_state": "waiting for planning",
                "description": "",
                "metrics": {},
                "run_id": None,
            }
            if repo is not None:
                statuses = [
                    s
                    for s in await commit_statuses(
                        session, repository_id=repo.id or 0, commit_sha=sha
                    )
                    if s.context == CONTEXT
                ]
                runs = await runs_for_commit(session, sha)
                jobs = await jobs_of_runs(session, [r.id or 0 for r in runs])
                if jobs:
                    row["job_state"] = f"job {jobs[-1].state} · commit status not yet posted"
                    row["run_id"] = jobs[-1].run_id
                    row["metrics"] = (await metrics_of_jobs(session, [jobs[-1].id or 0]))[
                        jobs[-1].id or 0
                    ]
                if statuses:
                    row["state"], row["description"] = statuses[-1].state, statuses[-1].description
                    job_state = jobs[-1].state if jobs else "planned"
                    row["job_state"] = f"job {job_state} · commit status {statuses[-1].state}"
            results[label] = row
    return results


def print_table(results: dict[str, dict[str, object]]) -> None:
    print("\nChecks")
    print(f"  {'ref':8} {'commit':8} {'context':20} {'state':8} description")
    for label, row in results.items():
        print(
            f"  {label:8} {str(row['sha'])[:7]:8} {CONTEXT:20} {str(row['state']):8} {row['description']}"
        )
    base, head = (dict(r["metrics"]) for r in results.values())  # type: ignore[call-overload]
    print("\nMetrics")
    print(f"  {'metric':10} {'main':>10} {'PR #1':>10} {'change':>10}")
    for name in sorted(set(base) | set(head)):
        b, h = base.get(name), head.get(name)
        delta = f"{h - b:+.4f}" if b is not None and h is not None else "—"
        print(f"  {name:10} {_fmt(b):>10} {_fmt(h):>10} {delta:>10}")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"
