"""Finding: a step on a process-executor runner ran `env; cat "$LABCI_RUNNER_WORKDIR/runner.json"`
and its log showed the runner token, `LABCI_WEBHOOK_SECRET` and the database URL (D11).

Tried again against real processes (`labci serve`, `labci worker`, `labci-runner start`) on
a runner whose environment holds all of those, with `LABCI_RUNNER_JOB_USER` set to a real
unprivileged user: the stored log (read through the API) shows none of them, the step ran
as that user and was refused the runner's files, and the job still succeeds with metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.jobuser import JOB_USER, job_user, reachable_dir
from helpers.stack import SECRET

pytestmark = pytest.mark.e2e

PROBE = """\
name: probe
on:
  push: {{branches: [main]}}
jobs:
  look:
    runs-on: [cpu]
    steps:
      - name: look around
        run: |
          env | sort
          id
          ls -la ..
          cat "$LABCI_RUNNER_WORKDIR/runner.json" || echo "no LABCI_RUNNER_WORKDIR here"
          cat {workdir}/runner.json || echo "runner.json: refused"
          ls {workdir}/mirrors || echo "mirrors: refused"
          cat /proc/$PPID/environ || echo "the runner's environ: refused"
          echo "checked out $(git log -1 --format=%H)"
      - name: train
        run: |
          echo '{{"accuracy": 0.93}}' > "$LABCI_OUTPUT/metrics.json"
          echo "::metric name=loss::0.25"
    metrics:
      file: metrics.json
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """The runner's workdir where its job user can reach its jobs (pytest's tmp_path cannot
    be entered by another user)."""
    with reachable_dir("labci-e2e-runner-") as root:
        yield root / "runner"


def test_a_step_cannot_read_the_runners_credentials(stack, github, workdir: Path) -> None:
    user = job_user()
    stack.start_server()
    stack.start_worker()
    registration = stack.cli("runners", "token").strip().splitlines()[-1]
    # The runner's environment holds everything the attacker saw (stack.env(): the database
    # URL, the webhook secret, a GitHub token, the Redis URL) and a registration token.
    runner_env = stack.env(
        LABCI_RUNNER_WORKDIR=str(workdir),
        LABCI_RUNNER_NAME="runner0",
        LABCI_RUNNER_JOB_USER=JOB_USER,
        LABCI_REGISTRATION_TOKEN=registration,
    )
    stack.spawn("runner0", "labci_runner.cli", "start", env=runner_env)

    repo = create_bare_repo(github.repos_root, "octo", "probe")
    sha = repo.commit({".labci/probe.yml": PROBE.format(workdir=workdir)})
    payload = push_payload("octo", "probe", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "push-probe").status_code == 202
    (run,) = stack.wait_for_runs_finished(sha, 1)
    (job,) = run["jobs"]
    texts = [line["text"] for line in job["logs"]]
    log = "\n".join(texts)

    # The job still works: both steps succeeded, metrics from the file and the line.
    assert [s["status"] for s in job["steps"]] == ["success", "success"], log
    assert job["metrics"] == {"accuracy": 0.93, "loss": 0.25}
    # None of the runner's credentials, nor the server's, reached the log.
    token = json.loads((workdir / "runner.json").read_text())["runner_token"]
    for name, value in {
        "runner token": token,
        "registration token": registration,
        "webhook secret": SECRET,
        "database URL": stack.database_url,
        "Redis URL": stack.redis_url,
        "GitHub token": runner_env["LABCI_GITHUB_TOKEN"],
    }.items():
        assert value not in log, f"the {name} is in the job's log"
    dumped = {t.split("=", 1)[0] for t in texts if "=" in t and t.split("=", 1)[0].isupper()}
    assert not {"LABCI_RUNNER_TOKEN", "LABCI_DATABASE_URL", "LABCI_REDIS_URL"} & dumped
    assert {"LABCI_COMMIT_SHA", "LABCI_OUTPUT", "HOME", "PATH"} <= dumped
    # The step ran as the job user, and the runner's files were refused to it.
    assert f"uid={user.pw_uid}({JOB_USER}) gid={user.pw_gid}({JOB_USER})" in log
    assert f"USER={JOB_USER}" in texts
    assert "no LABCI_RUNNER_WORKDIR here" in texts
    assert f"cat: {workdir}/runner.json: Permission denied" in texts
    assert "runner.json: refused" in texts
    assert "mirrors: refused" in texts
    assert "the runner's environ: refused" in texts
    assert any(f" {JOB_USER} " in t and t.rstrip().endswith(" src") for t in texts), log
    # Git works in its checkout.
    assert f"checked out {sha}" in texts
