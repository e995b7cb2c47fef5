"""D5 through the whole loop: a trusted pull request's job prints a secret every way a
secret gets printed — raw, in two writes, JSON- and URL-escaped, base64 (alone and inside
a longer text), through `set -x`, on stderr, across many log batches, and in a failing
step's traceback — and no form of it is in the stored logs, the API, the run page, the
commit statuses, the pull request's comment or the server's log; `***` is there instead."""

from __future__ import annotations

import base64
import html
import json
import time
from urllib.parse import quote, quote_plus

import httpx
import pytest
from cryptography.fernet import Fernet

from forge_standin import create_bare_repo, pull_request_payload, push_payload
from helpers.stack import wait_for_statuses

pytestmark = pytest.mark.e2e

SECRET_VALUE = "tok'en/Va+lue\"with&amp;42"
WORKFLOW = """\
name: leak
on: pull_request
jobs:
  fit:
    runs-on: cpu
    env:
      S: ${{ secrets.LEAKY }}
    steps:
      - name: print it every way
        run: |
          echo "raw $S"
          printf 'split %s' "${S:0:6}"; printf '%s\\n' "${S:6}"
          python3 -c 'import json, os; print(json.dumps({"k": os.environ["S"]}))'
          python3 -c 'import os, urllib.parse as u; print(u.quote(os.environ["S"], safe=""))'
          python3 -c 'import os, urllib.parse as u; print(u.quote_plus(os.environ["S"]))'
          printf '%s' "$S" | base64
          printf 'xx%s' "$S" | base64
          echo "stderr $S" >&2
          for i in $(seq 1 600); do echo "line $i $S"; done
          set -x
          : "$S"
          set +x
      - name: fail with a traceback
        continue-on-error: true
        run: |
          python3 -c 'import os; raise RuntimeError("bad key " + os.environ["S"])'
      - run: |
          echo '{"acc": 0.9}' > "$LABCI_OUTPUT/metrics.json"
    metrics: {file: metrics.json}
"""


def forms(value: str) -> list[str]:
    """The value as each way of printing it shows it (base64 inside a longer text: the
    part that does not depend on its neighbours)."""
    raw = value.encode()
    embedded = base64.b64encode(b"xx" + raw).decode()
    return [
        value,
        json.dumps(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(raw).decode(),
        embedded[4:-4],
        html.escape(value),
    ]


def assert_absent(where: str, text: str) -> None:
    for form in forms(SECRET_VALUE):
        assert form not in text, f"{where} holds the secret as {form!r}"
        assert html.escape(form) not in text, f"{where} holds the secret as {form!r}"


def wait_for_comment(github, number):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        comments = github.standin.comments("octo", "exp", number)
        if comments and "acc" in comments[-1]["body"]:
            return comments
        time.sleep(0.2)
    raise AssertionError(f"no comment: {github.standin.comments('octo', 'exp', number)}")


def test_a_secret_never_leaves_the_runner_in_any_form(stack, github):
    stack.extra_env["LABCI_SECRET_KEY"] = Fernet.generate_key().decode()
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    base = repo.commit({".labci/leak.yml": WORKFLOW})
    head = repo.commit({"model.py": "v1"}, branch="feature")
    github.standin.open_pull_request("octo", "exp", 9, head_ref="feature", base_ref="main")
    stack.start_all()
    # A push makes the repository known (the workflow runs on pull requests only)…
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, base)
    assert stack.deliver("push", push, "push-base").status_code == 202
    # …so that its secret can be set before the pull request comes.
    stack.cli(
        "secrets", "set", "octo/exp", "LEAKY", stdin=SECRET_VALUE + "\n",
        LABCI_API_TOKEN=stack.admin_token,
    )  # fmt: skip
    payload = pull_request_payload(
        "opened", "octo", "exp", repo.clone_url, 9, "feature", head, "main", base
    )
    assert stack.deliver("pull_request", payload, "pr-open").status_code == 202
    (run,) = stack.wait_for_runs_finished(head, 1)
    (job,) = run["jobs"]
    lines = [line["text"] for line in job["logs"]]
    # The job saw the value (its metrics arrived, the traceback step failed as written)…
    assert job["job"]["state"] == "success"
    assert [s["status"] for s in job["steps"]] == ["success", "failure", "success"]
    # …and every form of it was replaced where it was printed.
    assert "raw ***" in lines
    assert "split ***" in lines
    assert '{"k": "***"}' in lines
    assert "stderr ***" in lines
    assert sum(1 for line in lines if line.startswith("line ") and line.endswith(" ***")) >= 500
    assert any(line.startswith("+ : ") and "***" in line for line in lines)
    assert any("RuntimeError: bad key ***" in line for line in lines)
    headers = {"authorization": f"Bearer {stack.admin_token}"}
    answer = httpx.get(f"{stack.url}/api/v1/runs/{run['run']['id']}", headers=headers, timeout=30)
    assert_absent("the API", answer.text)
    page = httpx.get(f"{stack.url}/runs/{run['run']['id']}", headers=headers, timeout=30)
    assert page.status_code == 200
    assert_absent("the run page", page.text)
    statuses = wait_for_statuses(
        github.standin, ("octo", "exp", head),
        lambda found: any(s["state"] == "success" for s in found), "the final status",
    )  # fmt: skip
    assert_absent("the statuses", json.dumps(statuses))
    assert_absent("the comment", json.dumps(wait_for_comment(github, 9)))
    assert_absent("the server's log", stack.log("server") + stack.log("worker"))
    assert_absent("the runner's log", stack.log("runner0"))
