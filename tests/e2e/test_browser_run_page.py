"""The run page in a real browser (Debian's chromium through Playwright) against the real
loop, as a researcher uses it while a two-job run goes: the graph of what needs what, the
running step open with its lines arriving, the job turning to success without a reload, a
progress bar as a terminal leaves it, search, timestamps on demand, a link to a line in a
folded step, and a writer's re-run, after which the first attempt's log stays reachable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from forge_standin import create_bare_repo, push_payload
from helpers.browsing import Person
from helpers.people import PASSWORD
from helpers.stack import Stack
from helpers.waiting import HANG_GUARD_S, wait_until

pytestmark = pytest.mark.e2e

STAGED = """\
name: staged
on: push
jobs:
  prep:
    runs-on: cpu
    steps:
      - name: fetch data
        run: seq 1 6000; echo "data ready"
  train:
    runs-on: cpu
    needs: prep
    steps:
      - name: warm up
        run: echo "warming the cache"
      - name: fit
        run: |
          echo "epoch 1"
          while [ ! -e {gate} ]; do sleep 0.1; done
          printf '\\r 10%%|#   |\\r100%%|####|\\n'
          echo "accuracy 0.9"
"""
LIVE_MS = HANG_GUARD_S * 1000


def test_a_run_page_follows_the_run_and_a_writer_reruns_a_job(
    stack: Stack, github, open_tab: Callable[[], Person], tmp_path: Path
):
    gate = tmp_path / "gate"
    repo = create_bare_repo(github.repos_root, "octo", "staged")
    sha = repo.commit({".labci/staged.yml": STAGED.format(gate=gate)})
    stack.start_all()
    stack.cli("users", "create", "boss", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    payload = push_payload("octo", "staged", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "push-staged").status_code == 202

    def train() -> dict | None:
        runs = stack.runs_for_commit(sha)
        jobs = [j for r in runs for j in r["jobs"] if j["job_key"] == "train"]
        return {"run": runs[0]["run"]["id"], **jobs[0]} if jobs else None

    wait_until(lambda: (train() or {}).get("state") == "running", what="train to run")
    found = train() or {}
    run_id, job_id = found["run"], found["id"]

    boss = open_tab()
    boss.sign_in("boss", PASSWORD)
    page = boss.page
    page.goto(f"/runs/{run_id}")
    page.evaluate("window.labciNotReloaded = true")
    nodes = page.locator("svg.graph a.node")
    expect(nodes).to_have_count(2)
    assert nodes.evaluate_all("ns => ns.map(n => n.dataset.job)") == ["prep", "train"]
    expect(page.locator('svg.graph path.edge[data-from="prep"][data-to="train"]')).to_have_count(1)

    section = page.locator(f"#job-{job_id}")
    fit = section.locator("details.step", has_text="fit")
    expect(fit.locator(".line", has_text="epoch 1")).to_be_visible(timeout=LIVE_MS)
    gate.touch()
    # The job ends: its section turns to success by itself, and the steps fold.
    expect(section.locator("h2 .job-state")).to_have_text("success", timeout=LIVE_MS)
    assert page.evaluate("window.labciNotReloaded") is True
    bar = section.locator(".line", has_text="100%")
    # The step the reader had open stays open when the section is refreshed.
    expect(bar).to_be_visible()
    assert bar.evaluate("el => el.lastChild.textContent") == "100%|####|"  # the last drawing

    # Search shows the matching lines only, and says how many.
    section.get_by_role("searchbox").fill("accuracy")
    expect(section.locator("output.matches")).to_have_text("1 matching line (of those loaded)")
    expect(section.locator(".line:visible")).to_have_count(1)
    section.get_by_role("searchbox").fill("")
    expect(section.locator("output.matches")).to_have_text("")

    # Timestamps only when asked for (they are never part of a copied line).
    line = section.locator(".line", has_text="accuracy 0.9")
    before = "el => getComputedStyle(el, '::before').content"
    assert line.evaluate(before) in ("none", "normal")
    section.get_by_label("timestamps (UTC)").check()
    assert line.evaluate(before).strip('"') == line.get_attribute("data-t")

    # A link to a line in a folded step opens the step.
    warm = section.locator("details.step", has_text="warm up")
    expect(warm).not_to_have_attribute("open", "")
    target = warm.locator(".line", has_text="warming the cache")
    page.goto(f"{stack.url}/runs/{run_id}#{target.get_attribute('id')}")
    expect(page.locator(f"#{target.get_attribute('id')}")).to_be_visible()

    # prep printed 6,000 lines: the page opened on the last 5,000; the earlier ones come
    # on demand, into their step, in order.
    prep = page.locator("section.job", has=page.locator("h2", has_text="prep"))
    prep.locator("details.step summary").first.click()
    prep.locator("a.earlier").click()
    first_line = prep.locator("details.step .line").first
    expect(first_line.locator("a.n")).to_have_text("1")
    numbers = [int(n) for n in prep.locator(".line a.n").all_text_contents()]
    assert numbers == list(range(1, len(numbers) + 1))
    expect(prep.locator("a.earlier")).to_have_count(0)

    # A writer re-runs the job: a new attempt; the first one's log is still there.
    page.locator(f"#job-{job_id}").get_by_role("button", name="Re-run this job").click()
    expect(page).to_have_url(f"{stack.url}/runs/{run_id}")

    def attempt() -> tuple[int, str]:
        detail = stack.api(f"/api/v1/runs/{run_id}")
        (job,) = [row["job"] for row in detail["jobs"] if row["job"]["id"] == job_id]
        return job["attempt"], job["state"]

    wait_until(lambda: attempt() == (2, "success"), what="the second attempt to succeed")
    page.reload()
    first = page.locator(f"#job-{job_id}").get_by_role("link", name="attempt 1's log")
    href = first.get_attribute("href") or ""
    log = httpx.get(stack.url + href, timeout=30).text
    assert "epoch 1" in log
    assert "accuracy 0.9" in log
    expect(page.locator(f"#job-{job_id} p.muted")).to_contain_text("attempt 2")
    assert boss.page_errors() == []
    assert boss.violations() == []
