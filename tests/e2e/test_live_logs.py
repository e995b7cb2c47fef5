"""A job's log, live (issue 13, item 3): Server-Sent Events from a real `labci serve` while
a real runner's step prints, read by a script and by a browser on the run page.

The stream carries every line once, in order, each event naming the last line's seq; it
ends with the attempt's outcome; a reconnect with Last-Event-ID gets only what is new. The
run page puts the lines in their step as they come, with no reload."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from forge_standin import create_bare_repo, push_payload
from helpers.browsing import Person
from helpers.stack import Stack
from helpers.waiting import HANG_GUARD_S, wait_until

pytestmark = pytest.mark.e2e

CHATTY = """\
name: chatty
on: push
jobs:
  talk:
    runs-on: cpu
    steps:
      - run: |
          printf '\\033[32mgreen\\033[0m plain\\n'
          i=0
          while [ ! -e {gate} ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done
          echo through
"""
LINE = re.compile(
    r'<span class="line (\w+)" id="L(\d+)-(\d+)" data-step="\d+" data-t="[\d:.]+">'
    r'<a class="n" href="#L\2-\3">\3</a>(.*?)</span>'
)


def events(response: httpx.Response) -> Iterator[tuple[str, str, str]]:
    """(event, id, data) of each Server-Sent Event, as the specification frames them."""
    event, event_id, data = "message", "", []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event, event_id, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue  # a comment: sse-starlette's ping
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data.append(value)


def lines_of(data: str) -> list[tuple[int, str]]:
    """(seq, text) of each line in an event's HTML."""
    return [(int(m.group(3)) - 1, html.unescape(m.group(4))) for m in LINE.finditer(data)]


@pytest.fixture
def talking(stack: Stack, github, tmp_path: Path) -> tuple[int, int, Path]:
    """A job printing a line every 50 ms until its gate file appears: (run, job, gate)."""
    gate = tmp_path / "gate"
    repo = create_bare_repo(github.repos_root, "octo", "chat")
    sha = repo.commit({".labci/chatty.yml": CHATTY.format(gate=gate)})
    stack.start_all()
    payload = push_payload("octo", "chat", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "push-chatty").status_code == 202

    def running() -> dict | None:
        runs = stack.runs_for_commit(sha)
        jobs = [j for r in runs for j in r["jobs"] if j["state"] == "running"]
        return {"run": runs[0]["run"]["id"], "job": jobs[0]["id"]} if jobs else None

    wait_until(running, what="the chatty job to run")
    found = running() or {}
    return found["run"], found["job"], gate


def test_a_script_reads_every_line_once_in_order_then_the_end(stack: Stack, talking):
    _, job_id, gate = talking
    seen: list[tuple[int, str]] = []
    ids: list[int] = []
    timeout = httpx.Timeout(HANG_GUARD_S, connect=30)
    with httpx.stream("GET", f"{stack.url}/jobs/{job_id}/logs/stream", timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for event, event_id, data in events(r):
            if event == "end":
                end = data
                break
            assert event == "lines"
            seen += lines_of(data)
            ids.append(int(event_id))
            assert ids[-1] == seen[-1][0]  # an event's id: its last line's seq
            if len([text for _, text in seen if text.startswith("line ")]) >= 20:
                gate.touch()  # the step ends; the stream must deliver the rest, then end
    assert end == "success"
    assert [seq for seq, _ in seen] == list(range(len(seen)))
    numbered = [text for _, text in seen if text.startswith("line ")]
    assert numbered == [f"line {n}" for n in range(len(numbered))]
    assert seen[-1][1] == "through"
    stored = stack.api(f"/api/v1/runs/{talking[0]}")["jobs"][0]["logs"]
    assert [(line["seq"], line["text"]) for line in stored] == seen
    raw = httpx.get(f"{stack.url}/jobs/{job_id}/log.txt", timeout=timeout)
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["content-disposition"] == (
        f'attachment; filename="labci-job-{job_id}-attempt-1.log"'
    )
    assert raw.text == "".join(text + "\n" for _, text in seen)

    # A browser reconnecting sends the last id it saw: it gets the rest, nothing twice.
    resume = ids[0]
    again: list[tuple[int, str]] = []
    headers = {"last-event-id": str(resume)}
    url = f"{stack.url}/jobs/{job_id}/logs/stream"
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as r:
        for event, _, data in events(r):
            if event == "end":
                break
            again += lines_of(data)
    assert again == seen[resume + 1 :]


def test_the_run_page_shows_new_lines_as_they_come(
    stack: Stack, talking, open_tab: Callable[[], Person]
):
    run_id, job_id, gate = talking
    person = open_tab()
    page = person.page
    page.goto(f"/runs/{run_id}")
    page.evaluate("window.labciNotReloaded = true")
    log = page.locator("pre.log")
    # Lines the page did not have when it loaded arrive by themselves.
    expect(page.locator(f"#L{job_id}-1")).to_be_visible()
    loaded = int(page.evaluate("document.querySelectorAll('pre.log .line').length"))
    later = page.locator(f"#L{job_id}-{loaded + 40}")
    expect(later).to_be_attached(timeout=HANG_GUARD_S * 1000)
    gate.touch()
    expect(log).to_contain_text("through", timeout=HANG_GUARD_S * 1000)
    assert page.evaluate("window.labciNotReloaded") is True
    numbers = [int(n) for n in log.locator(".line a.n").all_inner_texts()]
    assert numbers == list(range(1, len(numbers) + 1))  # each line once, in order
    # ANSI colours as a terminal shows them (ansi_up), not as escape codes.
    colored = log.locator(".line", has_text="green plain")
    expect(colored.locator("span[style*='color']")).to_have_text("green")
    assert "\x1b" not in colored.inner_text()
    link = page.locator(f"#L{job_id}-2 a.n")
    expect(link).to_have_attribute("href", f"#L{job_id}-2")
    assert person.page_errors() == []
    assert person.violations() == []
