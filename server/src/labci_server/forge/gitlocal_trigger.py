"""Sending events of the local `git` forge: `labci trigger` and the post-receive hook.

`labci hook install` registers the bare repository with labci (its HEAD is its default
branch) and gives its hook a token of its own: the server keeps only the token's hash, and the token lives in `REPO/labci/
hook-token`, readable by the repository's owner only. Every event of the repository is sent
with it (`Authorization: Bearer`); re-installing rotates it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from ..db.queries.repositories import register_local_repository
from ..errors import BadRequest, ConfigError
from ..tokens import HOOK_TOKEN_PREFIX, hash_token, new_token
from ..webhooks.gitlocal import BRANCH_DELETED

HOOK_MARKER = "# installed by labci"
TOKEN_FILE = Path("labci") / "hook-token"


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
    commit = sha or rev_parse(repo, f"refs/heads/{branch}")
    return {
        "delivery_id": str(uuid.uuid4()),
        "kind": "push",
        "repo_path": str(repo),
        "branch": branch,
        "commit_sha": commit,
        **_who_and_what(repo, commit),
    }


def branch_deleted_event(repo: Path, branch: str) -> dict[str, Any]:
    """A branch deleted: its unfinished push runs are cancelled, as on GitHub."""
    return {"kind": BRANCH_DELETED, "repo_path": str(repo), "branch": branch}


def pull_request_event(repo: Path, head: str, base: str) -> dict[str, Any]:
    commit = rev_parse(repo, f"refs/heads/{head}")
    return {
        "delivery_id": str(uuid.uuid4()),
        "kind": "pull_request",
        "repo_path": str(repo),
        "branch": head,
        "commit_sha": commit,
        "base_branch": base,
        "base_sha": rev_parse(repo, f"refs/heads/{base}"),
        **_who_and_what(repo, commit),
    }


def _who_and_what(repo: Path, sha: str) -> dict[str, str]:
    """The local user sending the event, and the commit's subject: the runs list's "who"
    and headline (the local forge has no pull request titles)."""
    subject = subprocess.run(
        ["git", "--git-dir", str(repo), "log", "-1", "--format=%s", sha],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {}
    with contextlib.suppress(OSError, KeyError):  # a uid with no name (some containers)
        found["sender"] = getpass.getuser()
    if subject.returncode == 0 and subject.stdout.strip():
        found["title"] = subject.stdout.strip()
    return found


def _post(server_url: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(
        server_url.rstrip("/") + path,
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )
    if response.status_code >= 300:
        raise BadRequest(f"server answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


def send_hook_event(server_url: str, repo: Path, event: dict[str, Any]) -> dict[str, Any]:
    """POST a push or pull request of the local repository `repo` with its hook token."""
    token = read_hook_token(repo)
    body = json.dumps(event).encode()
    return _post(server_url, "/webhooks/git", body, {"authorization": f"Bearer {token}"})


def read_hook_token(repo: Path) -> str:
    path = repo / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} is missing: run `labci hook install {repo}` on the labci server first"
        ) from exc
    except PermissionError as exc:
        raise ConfigError(f"{path} is not readable by this user; only its owner may send") from exc
    if not token:
        raise ConfigError(f"{path} is empty: run `labci hook install {repo}` again")
    return token


def write_hook_token(repo: Path, token: str) -> Path:
    """Write the token where only the repository's owner can read it (0600 in a 0700
    folder), replacing any older one in one step."""
    path = repo / TOKEN_FILE
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.parent.chmod(0o700)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.replace(partial, path)
    return path


def head_branch(repo: Path) -> str | None:
    """The branch the bare repository's HEAD names (its default branch), if it names one."""
    done = subprocess.run(
        ["git", "--git-dir", str(repo), "symbolic-ref", "--quiet", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:  # a detached HEAD
        return None
    return done.stdout.strip() or None


async def register_hook(
    sessions: async_sessionmaker[AsyncSession], repo: Path, *, public: bool
) -> str:
    """Register the bare repository with labci (its path is its name and clone URL, its
    HEAD its default branch) and mint its hook token; any older token of the repository
    stops working. Returns the token, which is stored nowhere else."""
    token = new_token(HOOK_TOKEN_PREFIX)
    default_branch = await asyncio.to_thread(head_branch, repo)
    async with sessions() as session, session.begin():
        await register_local_repository(
            session,
            path=str(repo),
            private=not public,
            hook_token_hash=hash_token(token),
            default_branch=default_branch,
        )
    return token


def install_hook(repo: Path, *, server_url: str, token: str) -> Path:
    """Write the hook token file and the post-receive hook (which reads it when it runs)."""
    hook = repo / "hooks" / "post-receive"
    if hook.exists() and HOOK_MARKER not in hook.read_text(errors="replace"):
        raise BadRequest(f"{hook} exists and was not written by labci; not overwriting it")
    write_hook_token(repo, token)
    command = [sys.executable, "-m", "labci_server.cli", "hook", "receive", str(repo)]
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        f"{HOOK_MARKER}: sends pushes to the labci server with the token in "
        f"{shlex.quote(str(repo / TOKEN_FILE))}\n"
        f"LABCI_PUBLIC_URL={shlex.quote(server_url)} exec {shlex.join(command)}\n"
    )
    hook.chmod(0o755)
    return hook


def receive_pushes(repo: Path, lines: list[str], *, server_url: str) -> list[str]:
    """Send one push event per updated branch; returns a line of output per event."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("refs/heads/"):
            continue
        _old, new, ref = parts
        branch = ref.removeprefix("refs/heads/")
        if set(new) == {"0"}:
            result = send_hook_event(server_url, repo, branch_deleted_event(repo, branch))
            cancelled = len(result.get("cancelled_runs") or [])
            out.append(f"labci: branch {branch} deleted → {cancelled} run(s) cancelled")
            continue
        result = send_hook_event(server_url, repo, push_event(repo, branch, new))
        out.append(f"labci: push to {branch} at {new[:7]} → event {result.get('event_id')}")
    return out
