"""Sending events of the local `git` forge: `labci trigger` and the post-receive hook."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from ..errors import BadRequest, ConfigError
from ..webhooks.gitlocal import sign

HOOK_MARKER = "# installed by labci"


def rev_parse(repo: Path, rev: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BadRequest(f"{repo}: no commit for {rev!r}")
    return done.stdout.strip()


def bare_repo(path: str) -> Path:
    repo = Path(path).resolve()
    if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
        raise BadRequest(f"{repo} is not a bare git repository")
    return repo


def push_event(repo: Path, branch: str, sha: str | None = None) -> dict[str, Any]:
    return {
        "delivery_id": str(uuid.uuid4()),
        "kind": "push",
        "repo_path": str(repo),
        "branch": branch,
        "commit_sha": sha or rev_parse(repo, f"refs/heads/{branch}"),
    }


def pull_request_event(repo: Path, head: str, base: str) -> dict[str, Any]:
    return {
        "delivery_id": str(uuid.uuid4()),
        "kind": "pull_request",
        "repo_path": str(repo),
        "branch": head,
        "commit_sha": rev_parse(repo, f"refs/heads/{head}"),
        "base_branch": base,
        "base_sha": rev_parse(repo, f"refs/heads/{base}"),
    }


def send_event(
    server_url: str, secret: str | None, event: dict[str, Any], *, path: str = "/webhooks/git"
) -> dict[str, Any]:
    """POST a signed event (a local forge's push or pull request, or a manual run)."""
    if not secret:
        raise ConfigError("LABCI_WEBHOOK_SECRET is not set; it signs local events")
    body = json.dumps(event).encode()
    response = httpx.post(
        server_url.rstrip("/") + path,
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": sign(body, secret)},
        timeout=30,
    )
    if response.status_code >= 300:
        raise BadRequest(f"server answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def install_hook(repo: Path, *, server_url: str, secret: str) -> Path:
    hook = repo / "hooks" / "post-receive"
    if hook.exists() and HOOK_MARKER not in hook.read_text(errors="replace"):
        raise BadRequest(f"{hook} exists and was not written by labci; not overwriting it")
    command = [sys.executable, "-m", "labci_server.cli", "hook", "receive", str(repo)]
    hook.write_text(
        "#!/bin/sh\n"
        f"{HOOK_MARKER}: sends pushes to the labci server\n"
        f"LABCI_PUBLIC_URL={shlex.quote(server_url)} LABCI_WEBHOOK_SECRET={shlex.quote(secret)} "
        f"exec {shlex.join(command)}\n"
    )
    hook.chmod(0o700)  # it holds the webhook secret
    return hook


def receive_pushes(
    repo: Path, lines: list[str], *, server_url: str, secret: str | None
) -> list[str]:
    """Send one push event per updated branch; returns a line of output per event."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("refs/heads/"):
            continue
        _old, new, ref = parts
        if set(new) == {"0"}:
            continue
        branch = ref.removeprefix("refs/heads/")
        result = send_event(server_url, secret, push_event(repo, branch, new))
        out.append(f"labci: push to {branch} at {new[:7]} → event {result.get('event_id')}")
    return out
