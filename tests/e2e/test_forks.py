"""A fork's pull request end to end (D1, D2, D4, D13): its workflow shows `pending`
"awaiting approval from a maintainer" and nothing runs; a writer approves it each of the
three ways — a `/labci approve` comment, `labci approve`, the run page's button in a real
browser — each approval binding one head commit; the job runs only on the docker runner,
without secrets or credentials, though a process runner is idle."""

from __future__ import annotations

import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import expect

from forge_standin import create_bare_repo, issue_comment_payload, pull_request_payload
from forge_standin.comments import user_id
from helpers.people import PASSWORD
from helpers.stack import SECRET, wait_for_statuses

pytestmark = pytest.mark.e2e

CONTEXT = "labci/boxed/fit"
AWAITING = "awaiting approval from a maintainer"
API_KEY = "sk-live-fork-must-never-see-this"
WORKFLOW = """\
name: boxed
on: pull_request
jobs:
  fit:
    runs-on: cpu
    container: {image: labci-test/busybox:1}
    steps:
      - run: |
          echo "key=[${{ secrets.API_KEY }}]"
          env | sort
          echo '{"accuracy": 0.91}' > "$LABCI_OUTPUT/metrics.json"
    metrics: {file: metrics.json}
"""


def states(github, sha):
    return [
        (s["state"], s["description"])
        for s in github.standin.statuses.get(("octo", "exp", sha), [])
    ]


def wait_for(github, sha, wanted, what):
    wait_for_statuses(
        github.standin, ("octo", "exp", sha),
        lambda statuses: any((s["state"], s["description"]) == wanted for s in statuses), what,
    )  # fmt: skip


def pull_request(stack, repo, head, base, action, delivery) -> None:
    payload = pull_request_payload(
        action, "octo", "exp", repo.clone_url, 5, "feature", head, "main", base,
        head_owner="stranger", head_repo="exp",
        head_clone_url="https://github.invalid/stranger/exp.git",
        author_association="CONTRIBUTOR",
    )  # fmt: skip
    assert stack.deliver("pull_request", payload, delivery).status_code == 202


def comment(stack, repo, login, delivery) -> httpx.Response:
    payload = issue_comment_payload(
        "octo", "exp", repo.clone_url, number=5, body="/labci approve\n\nlooks safe",
        login=login, user_id=user_id(login),
    )  # fmt: skip
    return stack.deliver("issue_comment", payload, delivery)


def held_run(stack, sha):
    (row,) = stack.runs_for_commit(sha)
    run = stack.api(f"/api/v1/runs/{row['run']['id']}")
    assert (run["run"]["approval"], run["run"]["trusted"]) == ("awaiting", False)
    assert [(j["job"]["state"], j["job"]["runner_id"]) for j in run["jobs"]] == [("pending", None)]
    return run["run"]["id"]


def ran_boxed(stack, sha) -> list[str]:
    """The job's log, after checking where it ran and what it saw."""
    (run,) = stack.wait_for_runs_finished(sha, 1)
    (job,) = run["jobs"]
    assert (job["job"]["state"], job["job"]["record"]["runner"]) == ("success", "boxed")
    lines = [line["text"] for line in job["logs"]]
    assert "key=[]" in lines  # D4: no secret for a fork's code
    text = "\n".join(lines)
    for credential in (API_KEY, SECRET, "test-token", "labcirun_", "labcijob_", "labcireg_"):
        assert credential not in text
    return lines


def test_a_fork_runs_only_once_a_writer_approves_each_head(
    stack, github, docker_host, test_images, browser
):
    stack.extra_env.update(
        {
            "LABCI_RUNNER_DOCKER_HOST": docker_host,
            "LABCI_RUNNER_PULL_POLICY": "never",
            "LABCI_SECRET_KEY": Fernet.generate_key().decode(),
        }
    )
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/boxed.yml": WORKFLOW, "model.py": "v0"})
    head = repo.commit({"model.py": "v1"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 5, head_ref="feature", base_ref="main")
    github.standin.set_permission("octo", "exp", "maint", "write")
    github.standin.set_permission("octo", "exp", "rando", "read")
    stack.start_server()
    stack.start_worker()
    # The process runner registers first: were forks allowed there, it would win the tie.
    stack.start_runner("host")
    stack.start_runner("boxed", LABCI_RUNNER_EXECUTOR="docker")

    # D1/D2: a prior contributor's fork waits; nothing is placed while it does.
    pull_request(stack, repo, head, base, "opened", "pr-opened")
    wait_for(github, head, ("pending", AWAITING), "the awaiting-approval status")
    first = held_run(stack, head)
    # The repository has a secret the workflow references (known to labci since the PR).
    admin = {"LABCI_API_TOKEN": stack.admin_token}
    done = stack.run_cli("secrets", "set", "octo/exp", "API_KEY", stdin=API_KEY + "\n", **admin)
    assert done.returncode == 0, done.stderr
    page = httpx.get(
        f"{stack.url}/runs/{first}", headers={"authorization": f"Bearer {stack.admin_token}"}
    )
    assert "Awaiting approval from a maintainer" in page.text

    # 1. A comment: a reader's does nothing, a writer's approves the head.
    refused = comment(stack, repo, "rando", "c-rando")
    assert refused.json() == {"ignored": "@rando may not approve: it takes write permission"}
    assert held_run(stack, head) == first
    approved = comment(stack, repo, "maint", "c-maint")
    assert approved.json()["approved"] == {"commit": head, "runs": [first], "by": "@maint"}
    wait_for(github, head, ("success", "accuracy 0.91"), "the approved head's result")
    ran_boxed(stack, head)

    # 2. A new push needs a new approval: `labci approve` with a writer's token.
    writer = stack.make_user("writer", scope="write")
    assert stack.run_cli("repos", "grant", "octo/exp", "writer", "write").returncode == 0
    second_head = repo.commit({"model.py": "v2"}, branch="feature")
    pull_request(stack, repo, second_head, base, "synchronize", "pr-sync-1")
    wait_for(github, second_head, ("pending", AWAITING), "the second head's approval wait")
    second = held_run(stack, second_head)
    reader = stack.make_user("reader", scope="write")
    assert stack.run_cli("repos", "grant", "octo/exp", "reader", "read").returncode == 0
    denied = stack.run_cli("approve", str(second), LABCI_API_TOKEN=reader)
    assert denied.returncode == 2
    assert "reader has read permission on octo/exp, not write" in denied.stderr
    assert held_run(stack, second_head) == second
    done = stack.run_cli("approve", str(second), LABCI_API_TOKEN=writer)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"approved by writer: run(s) #{second} start"
    wait_for(github, second_head, ("success", "accuracy 0.91"), "the second head's result")
    ran_boxed(stack, second_head)

    # 3. And the run page's button, in a real browser, signed in as the writer.
    third_head = repo.commit({"model.py": "v3"}, branch="feature")
    pull_request(stack, repo, third_head, base, "synchronize", "pr-sync-2")
    wait_for(github, third_head, ("pending", AWAITING), "the third head's approval wait")
    third = held_run(stack, third_head)
    context = browser.new_context(base_url=stack.url)
    tab = context.new_page()
    tab.goto("/login")
    tab.get_by_label("Login").fill("writer")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.goto(f"/runs/{third}")
    expect(tab.locator("#approval")).to_contain_text(f"commit {third_head[:10]}")
    tab.get_by_role("button", name="Approve and run").click()
    expect(tab.get_by_text("Approved by writer.")).to_be_visible()
    context.close()
    wait_for(github, third_head, ("success", "accuracy 0.91"), "the third head's result")
    ran_boxed(stack, third_head)
    assert ("pending", AWAITING) in states(github, third_head)
