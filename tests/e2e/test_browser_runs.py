"""The runs list in a real browser (Debian's chromium through Playwright) against the real
loop: a run appears, turns from running to success while the page stays open (htmx asks
for the table again; the page is never reloaded), filters work from the form, and the
browser reports no console error and no Content-Security-Policy violation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import expect

from forge_standin import create_bare_repo, push_payload
from helpers.browsing import Person
from helpers.people import PASSWORD
from helpers.stack import Stack
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

GATED = """\
name: train
on: push
jobs:
  fit:
    runs-on: cpu
    steps:
      - run: while [ ! -e {gate} ]; do sleep 0.1; done; echo through
"""
# Each wait spans at least one refresh of the table (every 5 s) on a loaded machine.
LIVE_MS = 60_000


def test_a_run_goes_from_running_to_success_while_the_page_is_open(
    stack: Stack, github, open_tab: Callable[[], Person], tmp_path: Path
):
    gate = tmp_path / "gate"
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": GATED.format(gate=gate)}, message="Tune the LR")
    stack.start_all()
    person = open_tab()
    page = person.page
    page.goto("/runs")
    expect(page.get_by_text("No runs yet.")).to_be_visible()
    page.evaluate("window.labciNotReloaded = true")

    payload = push_payload(
        "octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, sha, message="Tune the LR"
    )
    assert stack.deliver("push", payload, "push-live").status_code == 202
    row = page.locator("table.runs tbody tr").first
    expect(row.locator(".badge")).to_have_text("running", timeout=LIVE_MS)
    where = row.get_by_role("cell").nth(3)
    expect(where).to_contain_text("Tune the LR")  # the push's commit subject
    expect(where.locator(".muted")).to_have_text("main")
    expect(row.get_by_role("cell").nth(4)).to_have_text(sha[:7])
    expect(row).to_contain_text("so far")

    gate.touch()
    expect(row.locator(".badge")).to_have_text("success", timeout=LIVE_MS)
    expect(row).not_to_contain_text("so far")
    assert page.evaluate("window.labciNotReloaded") is True  # updated in place

    (run,) = stack.runs_for_commit(sha)
    row.get_by_role("link", name=f"#{run['run']['id']} train").click()  # the run's own page
    expect(page).to_have_url(f"{stack.url}/runs/{run['run']['id']}")

    page.goto("/runs")
    page.get_by_label("State").select_option("failure")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{stack.url}/runs?workflow=&branch=&pr=&state=failure")
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()
    page.get_by_role("link", name="clear").click()
    expect(page.locator("table.runs tbody tr")).to_have_count(1)
    assert person.page_errors() == []
    assert person.violations() == []


def test_a_writer_cancels_a_running_run_from_its_page(
    stack: Stack, github, open_tab: Callable[[], Person], tmp_path: Path
):
    gate = tmp_path / "gate"  # never opened: the job runs until cancelled
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/train.yml": GATED.format(gate=gate)})
    stack.start_all()
    stack.cli("users", "create", "boss", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "push-cancel").status_code == 202
    wait_until(
        lambda: [j["state"] for r in stack.runs_for_commit(sha) for j in r["jobs"]] == ["running"],
        what="the job to run",
    )
    (run,) = stack.runs_for_commit(sha)
    run_id = run["run"]["id"]

    anonymous = open_tab()
    anonymous.page.goto(f"/runs/{run_id}")
    expect(anonymous.page.get_by_role("heading", level=1)).to_contain_text(f"Run #{run_id}")
    expect(anonymous.page.get_by_role("button", name="Cancel run")).to_have_count(0)

    boss = open_tab()
    boss.sign_in("boss", PASSWORD)
    boss.page.goto(f"/runs/{run_id}")
    boss.page.get_by_role("button", name="Cancel run").click()
    expect(boss.page).to_have_url(f"{stack.url}/runs/{run_id}")
    wait_until(
        lambda: stack.runs_for_commit(sha)[0]["run"]["state"] == "finished",
        what="the cancelled run to finish",
    )
    (job,) = stack.runs_for_commit(sha)[0]["jobs"]
    assert job["state"] == "cancelled"
    boss.page.reload()
    expect(boss.page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert boss.page_errors() == []
    assert boss.violations() == []
