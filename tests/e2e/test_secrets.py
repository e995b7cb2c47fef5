"""Secrets end to end, through the real commands and processes: `labci secrets set/list`
through the API, a push whose job proves it received the values its workflow names (by
their sha256, never printing them) and not the one it does not name; key rotation with
`labci secrets rotate-key`, and `labci serve` refusing a key that opens nothing."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from forge_standin import create_bare_repo, push_payload
from helpers.server import server_context, test_settings
from labci_server.secrets import Scope, generate_key, put_secret

pytestmark = pytest.mark.e2e

REPO_VALUE = "repository value, with spaces & quotes ' \""
SHADOWED_VALUE = "server-wide value the repository overrides"
SHARED_VALUE = "server-wide shared value 0042"
UNUSED_VALUE = "value-of-a-secret-no-workflow-names"
VALUES = (REPO_VALUE, SHADOWED_VALUE, SHARED_VALUE, UNUSED_VALUE)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


WORKFLOW = f"""\
name: secrets
on: push
jobs:
  use:
    runs-on: [cpu]
    env:
      V: "${{{{ secrets.deploy_key }}}}"
    steps:
      - name: check
        env:
          S: "${{{{ secrets['SHARED_KEY'] }}}}"
        run: |
          test "$(printf %s "$V" | sha256sum)" = "{sha256(REPO_VALUE)}  -" && echo secret-ok
          test "$(printf %s "$S" | sha256sum)" = "{sha256(SHARED_VALUE)}  -" && echo shared-ok
          echo "printed by the workflow itself: {UNUSED_VALUE}"
"""


def start_server_with_key(stack, key: str) -> None:
    """`labci serve` with LABCI_SECRET_KEY; the other processes never get it."""
    stack.extra_env["LABCI_SECRET_KEY"] = key
    try:
        stack.start_server()
    finally:
        del stack.extra_env["LABCI_SECRET_KEY"]


def test_a_push_job_gets_the_secrets_it_names_and_no_other(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    first = repo.commit({"README.md": "an experiment\n"})
    start_server_with_key(stack, generate_key())
    stack.start_worker()
    stack.start_runner()
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 40, first)
    assert stack.deliver("push", push, "push-1").status_code == 202  # labci knows octo/exp now

    admin = {"LABCI_API_TOKEN": stack.admin_token}
    outputs = []
    for args, value in (
        (("octo/exp", "deploy_key"), REPO_VALUE + "\n"),  # one trailing newline is dropped
        (("--server", "DEPLOY_KEY"), SHADOWED_VALUE),
        (("--server", "shared_key"), SHARED_VALUE + "\n"),
        (("octo/exp", "UNUSED_SECRET"), UNUSED_VALUE),
    ):
        done = stack.run_cli("secrets", "set", *args, stdin=value, **admin)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    assert outputs[0].strip() == "secret DEPLOY_KEY of octo/exp created"
    assert outputs[1].strip() == "secret DEPLOY_KEY of the server created"

    short = stack.run_cli("secrets", "set", "octo/exp", "SHORT", stdin="1234567\n", **admin)
    assert short.returncode == 2
    assert "needs at least 8 characters" in short.stderr
    bad = stack.run_cli("secrets", "set", "octo/exp", "9lives", stdin=REPO_VALUE, **admin)
    assert bad.returncode == 2
    assert "'9lives' is not a secret name" in bad.stderr

    writer = stack.make_user("wri", scope="write")
    stack.cli("repos", "grant", "octo/exp", "wri", "write")
    refused = stack.run_cli(
        "secrets", "set", "octo/exp", "FROM_WRITER", stdin=REPO_VALUE, LABCI_API_TOKEN=writer
    )
    assert refused.returncode == 2
    assert "server answered 403" in refused.stderr
    assert "wri has write permission on octo/exp, not admin" in refused.stderr

    listed = stack.run_cli("secrets", "list", "octo/exp", **admin)
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["DEPLOY_KEY", "UNUSED_SECRET"]
    assert all(line.endswith("by admin") for line in lines)
    server_wide = stack.run_cli("secrets", "list", "--server", **admin)
    assert [line.split()[0] for line in server_wide.stdout.splitlines()] == [
        "DEPLOY_KEY",
        "SHARED_KEY",
    ]
    outputs += [short.stderr, bad.stderr, refused.stderr, listed.stdout, server_wide.stdout]

    second = repo.commit({".labci/secrets.yml": WORKFLOW})
    push = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", first, second)
    assert stack.deliver("push", push, "push-2").status_code == 202
    (run,) = stack.wait_for_runs_finished(second, 1)
    (job,) = run["jobs"]
    texts = [line["text"] for line in job["logs"]]
    assert job["job"]["state"] == "success", texts
    assert "secret-ok" in texts  # the repository's DEPLOY_KEY, not the server's
    assert "shared-ok" in texts
    # Had the runner been given UNUSED_SECRET, it would have redacted this line to ***.
    assert f"printed by the workflow itself: {UNUSED_VALUE}" in texts

    answers = [
        httpx.get(
            stack.url + path, headers={"authorization": f"Bearer {stack.admin_token}"}, timeout=30
        ).text
        for path in (
            "/api/v1/repos/octo/exp/secrets",
            "/api/v1/secrets",
            f"/api/v1/runs/{run['run']['id']}",
        )
    ]
    for value in VALUES:
        for text in (*outputs, *answers[:2], stack.log("server"), stack.log("worker")):
            assert value not in text
    for value in (REPO_VALUE, SHARED_VALUE, SHADOWED_VALUE):
        assert value not in answers[2]


async def store_server_secret(stack, key: str, name: str, value: str) -> None:
    settings = test_settings(stack.database_url, stack.redis_url, secret_key=key)
    async with server_context(settings) as sc:  # the schema upgraded, as `labci serve` does
        await put_secret(sc.settings, sc.sessions, Scope.server(), name=name, value=value)


def test_rotating_the_key_and_a_server_that_cannot_open_its_secrets(stack):
    old, new = generate_key(), generate_key()
    asyncio.run(store_server_secret(stack, old, "ROTATED", SHARED_VALUE))

    wrong = stack.run_cli("secrets", "rotate-key", LABCI_SECRET_KEY=new)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith(
        "labci: error: LABCI_SECRET_KEY: no key in it decrypts the server-wide secret ROTATED"
    )
    assert "nothing was re-encrypted" in wrong.stderr
    rotated = stack.run_cli("secrets", "rotate-key", LABCI_SECRET_KEY=f"{new},{old}")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("1 secret(s) re-encrypted with the first key")

    for key, message in (
        (old, "LABCI_SECRET_KEY: no key in it decrypts the server-wide secret ROTATED"),
        ("not-a-key", "LABCI_SECRET_KEY: key 1 of 1 is not a Fernet key"),
    ):
        refused = stack.run_cli("serve", LABCI_SECRET_KEY=key)
        assert refused.returncode == 2
        assert f"labci: error: {message}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert SHARED_VALUE not in refused.stderr + refused.stdout
    # `labci serve` checks that the new key alone opens every stored secret before it starts.
    start_server_with_key(stack, new)
