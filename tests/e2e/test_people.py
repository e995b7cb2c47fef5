"""People and machine credentials through the real commands, against a real `labci serve`:
`labci users create`, `labci login`/`logout`, tokens on the CLI, and D12 (a runner's token
missing, wrong or revoked → 401; a registration token is single-use and expires; a runner
fetches only its own jobs)."""

from __future__ import annotations

import json
import os
import stat
import time

import httpx
import pytest

from helpers.people import PASSWORD

pytestmark = pytest.mark.e2e


def test_login_keeps_a_private_token_that_logout_revokes(stack, tmp_path):
    stack.start_server()
    credentials = tmp_path / "config" / "credentials.json"
    env = {"LABCI_CREDENTIALS_FILE": str(credentials)}
    made = stack.run_cli("users", "create", "ada", "--admin", "--password-stdin", stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    assert "local administrator ada created" in made.stdout

    wrong = stack.run_cli(
        "login", "--login", "ada", "--password-stdin", stdin="not her password\n", **env
    )
    assert wrong.returncode == 2
    assert "wrong login or password" in wrong.stderr
    assert not credentials.exists()

    done = stack.run_cli("login", "--login", "ada", "--password-stdin", stdin=PASSWORD, **env)
    assert done.returncode == 0, done.stderr
    assert f"signed in to {stack.url} as ada" in done.stdout
    assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
    token = json.loads(credentials.read_text())[stack.url]["token"]
    me = httpx.get(stack.url + "/api/v1/user", headers={"authorization": f"Bearer {token}"})
    assert me.json() == {
        "login": "ada",
        "provider": "local",
        "admin": True,
        "via": "token",
        "scope": "write",
    }
    # The stored password is a hash, and no table holds the token itself.
    listed = stack.run_cli("tokens", "list", "--user", "ada")
    assert "labci CLI" in listed.stdout
    assert token not in listed.stdout

    out = stack.run_cli("logout", **env)
    assert out.returncode == 0, out.stderr
    assert json.loads(credentials.read_text()) == {}
    again = httpx.get(stack.url + "/api/v1/user", headers={"authorization": f"Bearer {token}"})
    assert again.status_code == 401


def test_a_token_made_on_the_page_works_with_login_with_token(stack, tmp_path):
    stack.start_server()
    token = stack.make_user("grace", scope="read")
    env = {"LABCI_CREDENTIALS_FILE": str(tmp_path / "c.json")}
    done = stack.run_cli("login", "--with-token", stdin=token + "\n", **env)
    assert done.returncode == 0, done.stderr
    assert "as grace" in done.stdout
    bad = stack.run_cli("login", "--with-token", stdin="labci_pat_made_up\n", **env)
    assert bad.returncode == 2
    assert "invalid, expired or revoked" in bad.stderr


def runner_token(stack, name: str) -> str:
    return json.loads((stack.root / name / "runner.json").read_text())["runner_token"]


def test_runner_credentials_d12(stack):
    stack.start_server()
    stack.start_runner("lab-gpu-1")
    token = runner_token(stack, "lab-gpu-1")
    beat = {"running": [], "slots": 1, "labels": ["cpu"]}

    def heartbeat(secret: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        return httpx.post(
            stack.url + "/api/v1/runners/heartbeat", json=beat, headers=headers, timeout=10
        )

    assert heartbeat(token).status_code == 200
    assert heartbeat(None).status_code == 401
    assert heartbeat("labcirun_wrong").status_code == 401
    assert heartbeat(stack.admin_token).status_code == 401  # a person's token is no runner's

    revoked = stack.run_cli("runners", "revoke", "lab-gpu-1")
    assert revoked.returncode == 0, revoked.stderr
    refused = heartbeat(token)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]
    fetch = httpx.get(
        stack.url + "/api/v1/runner/jobs/1?attempt=1",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert fetch.status_code == 401


def test_registration_tokens_are_single_use_and_expire(stack):
    stack.start_server()
    token = stack.run_cli("runners", "token").stdout.strip().splitlines()[-1]
    body = {"registration_token": token, "name": "r1", "labels": ["cpu"]}
    first = httpx.post(stack.url + "/api/v1/runners/register", json=body, timeout=10)
    second = httpx.post(stack.url + "/api/v1/runners/register", json=body, timeout=10)
    assert first.status_code == 200
    assert first.json()["runner_token"].startswith("labcirun_")
    assert second.status_code == 401

    short = stack.run_cli("runners", "token", LABCI_REGISTRATION_TOKEN_TTL_S="0.5")
    stale = short.stdout.strip().splitlines()[-1]
    deadline = time.time() + 0.5
    while time.time() <= deadline:  # the server's clock decides; wait past its expiry
        time.sleep(0.1)
    late = httpx.post(
        stack.url + "/api/v1/runners/register",
        json={**body, "registration_token": stale},
        timeout=10,
    )
    assert late.status_code == 401
    assert "expired" in late.json()["error"]
