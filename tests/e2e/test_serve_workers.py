"""`labci serve --workers N` (issue 14, item 8): N processes answer on one port, every
delivery is stored once whichever answers, /metrics sums what all of them timed, a worker
that dies is started again, and SIGTERM stops them all (and removes their shared metrics
directory)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx

from forge_standin import create_bare_repo, push_payload
from helpers.waiting import wait_until


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def webhook_count(stack) -> float:
    text = httpx.get(stack.url + "/metrics", timeout=10).text
    found = re.findall(r'^labci_webhook_response_seconds_count\{[^}]*code="202"[^}]*\} (\S+)$',
                       text, re.MULTILINE)  # fmt: skip
    return sum(float(n) for n in found)


def test_several_server_processes_share_the_port(stack, github, tmp_path):
    scratch = tmp_path / "tmp"  # the server's temporary files: its metrics directory
    scratch.mkdir()
    stack.extra_env["TMPDIR"] = str(scratch)
    repo = create_bare_repo(github.repos_root, "octo", "many")
    sha = repo.commit({"README.md": "no workflows here\n"})
    stack.start_server("--workers", "3")
    parent = stack.procs["server"].pid
    wait_until(lambda: len(children(parent)) == 3, what="three server processes")
    before = children(parent)
    answered = set()
    for n in range(60):
        payload = push_payload("octo", "many", repo.clone_url, "refs/heads/main", "0" * 40, sha)
        answer = stack.deliver("push", payload, f"many-{n}")
        assert answer.status_code == 202, answer.text
        answered.add(answer.json()["event_id"])
    assert len(answered) == 60  # each stored once
    # Each process timed the deliveries it answered; /metrics sums them all.
    assert webhook_count(stack) == 60
    assert [p.name.startswith("labci-metrics-") for p in scratch.iterdir()] == [True]
    # A worker that dies is started again; the others go on.
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: len(children(parent)) == 3 and victim not in children(parent),
        what="the dead server process to be started again",
    )
    assert "exited with -9; starting it again" in stack.log("server")
    assert httpx.get(stack.url + "/healthz", timeout=10).status_code == 200
    everyone = children(parent)
    stack.procs["server"].send_signal(signal.SIGTERM)
    assert stack.procs["server"].wait(timeout=60) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in everyone)
    assert list(scratch.iterdir()) == []  # the metrics directory went with them
