"""Reliability F2: on the default SQLite, 50 concurrent webhooks and 4 runners reporting
never surface "database is locked" as a 5xx, and every job ends with its status."""

from __future__ import annotations

import concurrent.futures

from forge_standin import create_bare_repo, push_payload
from helpers.stack import Stack
from helpers.waiting import wait_until

WORKFLOW = """\
name: load
on: push
jobs:
  quick:
    runs-on: cpu
    steps:
      - run: |
          echo "{\\"n\\": $RANDOM}" > "$LABCI_OUTPUT/m.json"
    metrics: {file: m.json}
"""
EVENTS = 50


def test_sqlite_under_concurrent_webhooks_and_runners(tmp_path, sqlite_url, redis_url, github):
    repo = create_bare_repo(github.repos_root, "octo", "load")
    shas = [
        repo.commit({".labci/load.yml": WORKFLOW, "n.txt": str(i)}, message=f"c{i}")
        for i in range(EVENTS)
    ]
    stack = Stack(
        root=tmp_path / "stack", database_url=sqlite_url, redis_url=redis_url, github_url=github.url
    )
    stack.root.mkdir()
    try:
        stack.start_server()
        stack.start_worker()
        for i in range(4):
            stack.start_runner(f"runner{i}")

        def send(i: int) -> int:
            payload = push_payload(
                "octo", "load", repo.clone_url, "refs/heads/main", "0" * 40, shas[i]
            )
            return stack.deliver("push", payload, f"load-{i}").status_code

        with concurrent.futures.ThreadPoolExecutor(max_workers=EVENTS) as pool:
            codes = list(pool.map(send, range(EVENTS)))
        assert codes == [202] * EVENTS

        def all_final() -> bool:
            return all(
                any(
                    s["state"] == "success"
                    for s in github.standin.statuses.get(("octo", "load", sha), [])
                )
                for sha in shas
            )

        wait_until(all_final, what="a success status on all 50 commits")
        logs = stack.dump_logs()
        assert "database is locked" not in logs
        finished_by = {
            name
            for name in stack.procs
            if name.startswith("runner") and "success" in stack.log(name)
        }
        assert len(finished_by) >= 2  # the work was spread over several runners
        errors = [r for r in github.standin.requests if r.status and r.status >= 500]
        assert errors == []
    finally:
        stack.stop_all()
