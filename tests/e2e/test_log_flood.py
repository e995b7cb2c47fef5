"""Reliability B15: steps print 50 000 and 1 000 000 numbered lines as fast as they can.
Every line is stored, in order, with contiguous sequence numbers, before the job is
reported finished; the lease (5 s here) is renewed throughout, so no attempt is reaped;
and a log cap below the output is a cut marked by one line.

Stored lines are read from the database itself: the run API is for people, not for a
million rows.
"""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import httpx
import pytest

from forge_standin import create_bare_repo, push_payload

# A flood of lines through the whole loop: 110 s on this 2-core machine while another suite
# ran beside it, and past pytest's 180 s default at a load average of 9.
pytestmark = pytest.mark.timeout(600)

FLOOD = """\
name: flood
on: push
jobs:
  fifty-thousand:
    runs-on: cpu
    steps:
      - run: seq 1 50000
  a-million:
    runs-on: cpu
    steps:
      - run: seq 1 1000000
"""
CAPPED = """\
name: capped
on: push
jobs:
  capped:
    runs-on: cpu
    steps:
      - run: seq 1 1000000
      - run: echo "still here" >&2
"""


def stored_lines(database_url: str, job_id: int, attempt: int) -> list[tuple[int, str, str]]:
    """(seq, stream, text) of an attempt's stored log, by seq."""
    query = (
        "SELECT seq, stream, text FROM log_lines WHERE job_id = $1 AND attempt = $2 ORDER BY seq"
    )
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            rows = db.execute(query.replace("$1", "?").replace("$2", "?"), (job_id, attempt))
            return [tuple(row) for row in rows]

    async def fetch() -> list[tuple[int, str, str]]:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(row) for row in await conn.fetch(query, job_id, attempt)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def run_flood(stack, github, workflow: str, runners: int) -> dict[str, dict]:
    repo = create_bare_repo(github.repos_root, "octo", "flood")
    sha = repo.commit({".labci/flood.yml": workflow})
    stack.start_all(runners=runners)
    payload = push_payload("octo", "flood", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    assert stack.deliver("push", payload, "flood-1").status_code == 202
    (run,) = stack.wait_for_runs_finished(sha, 1)
    return {j["job"]["job_key"]: j for j in run["jobs"]}


def test_every_line_is_stored_in_order_and_the_lease_holds(stack, github, database_url):
    jobs = run_flood(stack, github, FLOOD, runners=2)
    for key, count in (("fifty-thousand", 50_000), ("a-million", 1_000_000)):
        job = jobs[key]["job"]
        # The run API shows the first 5,000 lines (checkout, the step's header, the
        # numbers) and says there are more.
        shown = [line["text"] for line in jobs[key]["logs"]]
        assert len(shown) == 5000
        assert shown[2:] == [str(n) for n in range(1, 4999)]
        assert jobs[key]["logs_truncated"] is True
        # Attempt 1: the 5 s lease was renewed on every heartbeat while the step printed.
        assert (job["state"], job["attempt"]) == ("success", 1), job
        lines = stored_lines(database_url, job["id"], 1)
        assert [seq for seq, _, _ in lines] == list(range(len(lines)))
        out = [text for _, stream, text in lines if stream == "stdout"]
        assert len(out) == count
        assert out == [str(n) for n in range(1, count + 1)]
        # The raw download holds every line, in order (streamed a chunk at a time).
        raw = httpx.get(f"{stack.url}/jobs/{job['id']}/log.txt", timeout=120)
        assert raw.text.splitlines() == [text for _, _, text in lines]


def test_a_cap_below_the_output_is_a_marked_cut(stack, github, database_url):
    cap = 100_000  # bytes of output: lines 1..? of `seq`, newlines not counted
    stack.extra_env["LABCI_RUNNER_MAX_LOG_BYTES"] = str(cap)
    job = run_flood(stack, github, CAPPED, runners=1)["capped"]["job"]
    assert (job["state"], job["attempt"]) == ("success", 1), job
    lines = stored_lines(database_url, job["id"], 1)
    assert [seq for seq, _, _ in lines] == list(range(len(lines)))
    out = [text for _, stream, text in lines if stream == "stdout"]
    kept, total = 0, 0
    for n in range(1, 1_000_001):
        total += len(str(n))
        if total > cap:
            break
        kept = n
    assert out == [str(n) for n in range(1, kept + 1)]
    marker = (
        f"log truncated: the steps wrote more than {cap} bytes; later output was read and discarded"
    )
    texts = [text for _, _, text in lines]
    assert texts.count(marker) == 1
    assert texts.index(marker) == texts.index(out[-1]) + 1
    assert ("stderr", "still here") not in [(stream, text) for _, stream, text in lines]
