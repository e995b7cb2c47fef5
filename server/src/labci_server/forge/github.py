"""GitHub through gidgethub: workflow files via the trees/contents API, commit statuses.

GitHub vocabulary stays in this module; callers see Repository, commit_sha, StatusMessage.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

import gidgethub
import httpx
from gidgethub.httpx import GitHubAPI

from ..db.models import Repository
from ..errors import ForgeRejected, ForgeUnavailable
from .base import MAX_WORKFLOW_FILES, StatusMessage, is_workflow_path

USER_AGENT = "labci"
STATUS_PAGE_SIZE = 100


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """How long GitHub asked us to wait: `retry-after` first, then `x-ratelimit-reset`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after" in lowered:
            return max(0.0, float(lowered["retry-after"]))
        if lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
            return max(0.0, float(lowered["x-ratelimit-reset"]) - now)
    except ValueError:
        return None
    return None


def translate_error(exc: Exception, what: str) -> Exception:
    if isinstance(exc, httpx.TransportError):
        return ForgeUnavailable(f"{what}: {type(exc).__name__}")
    if isinstance(exc, gidgethub.HTTPException):
        status = int(exc.status_code)
        wait = retry_after_s(exc.headers, time.time())
        rate_limited = status == 429 or (
            status == 403 and (wait is not None or "rate limit" in str(exc).lower())
        )
        if status >= 500 or rate_limited:
            return ForgeUnavailable(f"{what}: GitHub answered {status}", retry_after_s=wait)
        return ForgeRejected(f"{what}: GitHub answered {status}: {exc}", status=status)
    return exc


class GitHubForge:
    def __init__(self, client: httpx.AsyncClient, *, api_url: str, token: str | None) -> None:
        self._api = GitHubAPI(client, USER_AGENT, oauth_token=token, base_url=api_url.rstrip("/"))

    async def _get(self, url: str, url_vars: dict[str, Any]) -> Any:
        try:
            return await self._api.getitem(url, url_vars)
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise translate_error(exc, f"GET {url}") from exc

    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> dict[str, bytes]:
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        tree = await self._get(
            "/repos/{owner}/{repo}/git/trees/{sha}?recursive=1", {**names, "sha": commit_sha}
        )
        paths = sorted(
            e["path"]
            for e in tree.get("tree", [])
            if e.get("type") == "blob" and is_workflow_path(e["path"])
        )
        files = {}
        for path in paths[:MAX_WORKFLOW_FILES]:
            item = await self._get(
                "/repos/{owner}/{repo}/contents/{+path}?ref={ref}",
                {**names, "path": path, "ref": commit_sha},
            )
            files[path] = base64.b64decode(item.get("content", ""))
        return files

    async def post_status(self, repo: Repository, message: StatusMessage) -> None:
        owner, name = repo.full_name.split("/", 1)
        data: dict[str, Any] = {
            "state": message.state,
            "context": message.context,
            "description": message.description,
        }
        if message.target_url:
            data["target_url"] = message.target_url
        url = "/repos/{owner}/{repo}/statuses/{sha}"
        try:
            await self._api.post(
                url, {"owner": owner, "repo": name, "sha": message.commit_sha}, data=data
            )
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise translate_error(exc, f"POST {url}") from exc

    async def has_status(self, repo: Repository, message: StatusMessage) -> bool:
        """Pages through the commit's statuses (GitHub keeps at most 1,000 per context)."""
        owner, name = repo.full_name.split("/", 1)
        url = "/repos/{owner}/{repo}/commits/{ref}/statuses?per_page=" + str(STATUS_PAGE_SIZE)
        names = {"owner": owner, "repo": name, "ref": message.commit_sha}
        try:
            async for found in self._api.getiter(url, names):
                if (found.get("context"), found.get("state"), found.get("description")) == (
                    message.context,
                    message.state,
                    message.description,
                ):
                    return True
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise translate_error(exc, f"GET {url}") from exc
        return False
