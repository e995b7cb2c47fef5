"""GitHub through gidgethub: workflow files via the trees/contents API, changed files and a
bisection's commits via the pull-request files and compare APIs, refs via the commits API,
commit statuses, the pull-request comment via the issue-comments API (every pull request is
an issue), a bisection's finding via the issue- or commit-comments API, and check runs via
the checks API.

Credentials: a static token (LABCI_GITHUB_TOKEN), or, when labci is a GitHub App, the
installation token of each request's repository (`github_app.InstallationTokens`). Check runs
exist only for Apps.

GitHub vocabulary stays in this module; callers see Repository, commit_sha, StatusMessage.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Collection, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import gidgethub
import gidgethub.apps
import httpx
from gidgethub.httpx import GitHubAPI

from ..db.models import Repository
from ..errors import ForgeRejected, ForgeUnavailable
from .base import (
    MAX_CHANGED_FILES,
    MAX_LISTED_COMMITS,
    ZERO_SHA,
    CheckRunMessage,
    CommentMessage,
    CommitCommentMessage,
    StatusMessage,
    WorkflowFiles,
    check_comment,
    check_commit_comment,
    is_workflow_path,
    limit_changed_paths,
    select_workflow_files,
)
from .blob_cache import BlobCache
from .facts import RepositoryFacts
from .github_checks import (
    check_check_run,
    check_run_data,
    fit_summary,
    reads_same,
    settled,
)
from .github_convert import entry_paths, facts_of, first_parent_line

if TYPE_CHECKING:
    from .github_app import InstallationTokens

USER_AGENT = "labci"
STATUS_PAGE_SIZE = 100
PULL_FILES_PAGE_SIZE = 100
COMMENTS_PAGE_SIZE = 100
COMPARE_FILES_CAP = 300  # GitHub lists at most 300 files of a comparison, without saying so
COMPARE_COMMITS_PAGE_SIZE = 100
CHECK_RUNS_PAGE_SIZE = 100


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
            return ForgeUnavailable(
                f"{what}: GitHub answered {status}", retry_after_s=wait, rate_limited=rate_limited
            )
        return ForgeRejected(f"{what}: GitHub answered {status}: {exc}", status=status)
    return exc


class GitHubForge:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str,
        token: str | None,
        app: InstallationTokens | None = None,
    ) -> None:
        """With `app`, every request uses its repository's installation token, not `token`."""
        self._api = GitHubAPI(client, USER_AGENT, oauth_token=token, base_url=api_url.rstrip("/"))
        self._app = app
        self._blobs = BlobCache()

    async def _token(self, repo: Repository) -> str | None:
        """The installation token for `repo`; None means the static token (no App)."""
        if self._app is None:
            return None
        if repo.installation_id is None:
            raise ForgeRejected(
                f"{repo.full_name}: labci has not seen an installation of its GitHub App for "
                "this repository yet; install the App on it (or redeliver its installation "
                "webhook)",
                status=404,
            )
        return await self._app.token(repo.installation_id)

    def _error(self, exc: Exception, what: str, repo: Repository, token: str | None) -> Exception:
        """`translate_error`, except that a 401 to an installation token drops the token: it
        was revoked before its time, and a retry mints a new one."""
        if (
            token is not None
            and self._app is not None
            and repo.installation_id is not None
            and isinstance(exc, gidgethub.HTTPException)
            and int(exc.status_code) == 401
        ):
            self._app.forget(repo.installation_id, token)
            return ForgeUnavailable(
                f"{what}: GitHub refused the token of installation {repo.installation_id} "
                "(401); a new one is minted on retry"
            )
        return translate_error(exc, what)

    async def _get(
        self,
        repo: Repository,
        url: str,
        url_vars: dict[str, Any],
        *,
        token: str | None,
        none_on: Collection[int] = (),
    ) -> Any:
        """The decoded response; None when GitHub answers one of the statuses in `none_on`."""
        try:
            return await self._api.getitem(url, url_vars, oauth_token=token)
        except gidgethub.HTTPException as exc:
            if int(exc.status_code) in none_on:
                return None
            raise self._error(exc, f"GET {url}", repo, token) from exc
        except httpx.TransportError as exc:
            raise translate_error(exc, f"GET {url}") from exc

    async def repository_facts(self, repo: Repository) -> RepositoryFacts:
        """Clone URL, visibility and default branch from `GET /repos/{owner}/{repo}`; as a
        GitHub App, also the installation that covers the repository
        (`GET /repos/{owner}/{repo}/installation` with the App's JWT), whose token then reads
        the repository. What a delivery says of these is never used: this is where they come
        from."""
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        installation_id = await self._installation_of(names) if self._app else None
        token = await self._app.token(installation_id) if self._app and installation_id else None
        url = "/repos/{owner}/{repo}"
        try:
            found = await self._api.getitem(url, names, oauth_token=token)
        except gidgethub.HTTPException as exc:
            if self._app and installation_id and int(exc.status_code) == 401 and token:
                self._app.forget(installation_id, token)
                raise ForgeUnavailable(f"GET {url}: installation token refused (401)") from exc
            raise translate_error(exc, f"GET {url}") from exc
        except httpx.TransportError as exc:
            raise translate_error(exc, f"GET {url}") from exc
        return facts_of(found, installation_id, f"GET {url} for {repo.full_name}")

    async def _installation_of(self, names: dict[str, str]) -> int:
        """The id of the App's installation on the repository (the App's own JWT)."""
        if self._app is None:
            raise ForgeRejected("only a GitHub App has installations", status=422)
        url = "/repos/{owner}/{repo}/installation"
        app_jwt = gidgethub.apps.get_jwt(
            app_id=self._app.app_id,
            private_key=self._app._private_key,  # noqa: SLF001 — the App's own key
        )
        try:
            found = await self._api.getitem(url, names, jwt=app_jwt)
        except gidgethub.HTTPException as exc:
            error = translate_error(exc, f"GET {url}")
            if isinstance(error, ForgeRejected) and error.status == 404:
                error = ForgeRejected(
                    f"{names['owner']}/{names['repo']}: labci's GitHub App is not installed on "
                    "this repository; install it there",
                    status=404,
                )
            raise error from exc
        except httpx.TransportError as exc:
            raise translate_error(exc, f"GET {url}") from exc
        found_id = found.get("id") if isinstance(found, dict) else None
        if not isinstance(found_id, int) or isinstance(found_id, bool):
            raise ForgeUnavailable(f"GET {url}: GitHub answered without an installation id")
        return found_id

    async def read_workflow_files(self, repo: Repository, commit_sha: str) -> WorkflowFiles:
        """Sizes come from the recursive tree listing, so a refused file is never downloaded."""
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        token = await self._token(repo)
        tree = await self._get(
            repo,
            "/repos/{owner}/{repo}/git/trees/{sha}?recursive=1",
            {**names, "sha": commit_sha},
            token=token,
        )
        blobs = [
            e
            for e in tree.get("tree", [])
            if e.get("type") == "blob" and is_workflow_path(e["path"])
        ]
        sizes = {e["path"]: int(e.get("size", 0)) for e in blobs}
        blob_ids = {e["path"]: str(e.get("sha", "")) for e in blobs}
        to_read, refused = select_workflow_files(sizes)
        files = {}
        for path in to_read:
            cached = self._blobs.get(repo.full_name, blob_ids[path]) if blob_ids[path] else None
            if cached is not None:
                files[path] = cached
                continue
            item = await self._get(
                repo,
                "/repos/{owner}/{repo}/contents/{+path}?ref={ref}",
                {**names, "path": path, "ref": commit_sha},
                token=token,
            )
            if item.get("encoding", "base64") != "base64":  # "none": too big to serve inline
                refused[path] = "GitHub did not serve it inline (too big); not read"
                continue
            files[path] = base64.b64decode(item.get("content", ""))
            self._blobs.put(repo.full_name, blob_ids[path], files[path])
        return WorkflowFiles(files=files, refused=dict(sorted(refused.items())))

    async def changed_files(
        self, repo: Repository, *, base_sha: str | None, head_sha: str, pr_number: int | None
    ) -> list[str] | None:
        """A pull request's files as GitHub lists them now (its current head and base, which
        may be newer than `head_sha`); a push's from the comparison of `base_sha...head_sha`."""
        if pr_number is not None:
            return await self._pull_request_files(repo, pr_number)
        if not base_sha or base_sha == ZERO_SHA:
            return None
        return await self._compared_files(repo, base_sha, head_sha)

    async def _pull_request_files(self, repo: Repository, pr_number: int) -> list[str] | None:
        owner, name = repo.full_name.split("/", 1)
        url = "/repos/{owner}/{repo}/pulls/{pull_number}/files?per_page=" + str(
            PULL_FILES_PAGE_SIZE
        )
        names = {"owner": owner, "repo": name, "pull_number": str(pr_number)}
        paths: set[str] = set()
        listed = 0
        token = await self._token(repo)
        try:
            async with aclosing(self._api.getiter(url, names, oauth_token=token)) as entries:
                async for entry in entries:
                    listed += 1
                    if listed >= MAX_CHANGED_FILES:  # GitHub stops listing at 3,000: maybe more
                        return None
                    paths.update(entry_paths(entry))
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise self._error(exc, f"GET {url}", repo, token) from exc
        return limit_changed_paths(paths)

    async def _compared_files(
        self, repo: Repository, base_sha: str, head_sha: str
    ) -> list[str] | None:
        comparison = await self._compare(repo, base_sha, head_sha)
        # Only when the base is an ancestor of the head is the three-dot comparison (the only
        # kind the API offers) the two-dot diff a push needs; a force push is "diverged".
        if comparison is None or comparison.get("status") not in ("ahead", "identical"):
            return None
        files = comparison.get("files") or []
        if len(files) >= COMPARE_FILES_CAP:
            return None
        return limit_changed_paths({p for entry in files for p in entry_paths(entry)})

    async def is_ancestor(self, repo: Repository, ancestor: str, descendant: str) -> bool:
        comparison = await self._compare(repo, ancestor, descendant)
        return comparison is not None and comparison.get("status") in ("ahead", "identical")

    async def _compare(self, repo: Repository, base_sha: str, head_sha: str) -> Any:
        """GitHub's comparison `base...head`; None when it does not know one of the commits."""
        owner, name = repo.full_name.split("/", 1)
        # per_page=1: the commits are paged, the files (on the first page) are not.
        return await self._get(
            repo,
            "/repos/{owner}/{repo}/compare/{basehead}?per_page=1",
            {"owner": owner, "repo": name, "basehead": f"{base_sha}...{head_sha}"},
            token=await self._token(repo),
            none_on=(404,),
        )

    async def commits_between(
        self, repo: Repository, base_sha: str, head_sha: str
    ) -> list[str] | None:
        """The comparison `base...head` lists every commit of head not in base, oldest first
        (paged, at most 250 in all); the first-parent line is walked from head through each
        commit's first parent, and must arrive at base."""
        if base_sha == head_sha:
            return []
        owner, name = repo.full_name.split("/", 1)
        url = "/repos/{owner}/{repo}/compare/{basehead}?per_page=" + str(COMPARE_COMMITS_PAGE_SIZE)
        url_vars = {"owner": owner, "repo": name, "basehead": f"{base_sha}...{head_sha}"}
        token = await self._token(repo)
        first_parent: dict[str, str | None] = {}
        try:
            async with aclosing(
                self._api.getiter(url, url_vars, oauth_token=token, iterable_key="commits")
            ) as listed:
                async for commit in listed:
                    if len(first_parent) >= MAX_LISTED_COMMITS:
                        return None
                    parents = commit.get("parents") or []
                    first_parent[commit["sha"]] = parents[0]["sha"] if parents else None
        except gidgethub.HTTPException as exc:
            if int(exc.status_code) == 404:  # an unknown commit, or no common history
                return None
            raise self._error(exc, f"GET {url}", repo, token) from exc
        except httpx.TransportError as exc:
            raise translate_error(exc, f"GET {url}") from exc
        return first_parent_line(first_parent, base_sha, head_sha)

    async def resolve_ref(self, repo: Repository, ref: str) -> str | None:
        if not ref:
            return None
        owner, name = repo.full_name.split("/", 1)
        commit = await self._get(
            repo,
            "/repos/{owner}/{repo}/commits/{ref}",
            {"owner": owner, "repo": name, "ref": ref},
            token=await self._token(repo),
            none_on=(404, 422),  # 422: "No commit found for SHA"
        )
        sha = commit.get("sha") if isinstance(commit, dict) else None
        return sha if isinstance(sha, str) else None

    async def pull_request_head(
        self, repo: Repository, *, pr_number: int, head_branch: str
    ) -> str | None:
        """`head.sha` of `GET /repos/{owner}/{repo}/pulls/{pull_number}`; None on a 404."""
        owner, name = repo.full_name.split("/", 1)
        pull = await self._get(
            repo,
            "/repos/{owner}/{repo}/pulls/{pull_number}",
            {"owner": owner, "repo": name, "pull_number": str(pr_number)},
            token=await self._token(repo),
            none_on=(404,),
        )
        head = pull.get("head") if isinstance(pull, dict) else None
        sha = head.get("sha") if isinstance(head, dict) else None
        return sha if isinstance(sha, str) and sha else None

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
        url_vars = {"owner": owner, "repo": name, "sha": message.commit_sha}
        await self._send(repo, await self._token(repo), "POST", url, url_vars, data)

    async def has_status(self, repo: Repository, message: StatusMessage) -> bool:
        """Whether the context's newest status reads so. GitHub lists a commit's statuses
        newest first, so the first one of the context decides (an older equal one does not:
        after a re-run, the same state may have to be posted again)."""
        owner, name = repo.full_name.split("/", 1)
        url = "/repos/{owner}/{repo}/commits/{ref}/statuses?per_page=" + str(STATUS_PAGE_SIZE)
        names = {"owner": owner, "repo": name, "ref": message.commit_sha}
        token = await self._token(repo)
        try:
            async for found in self._api.getiter(url, names, oauth_token=token):
                if found.get("context") == message.context:
                    return (found.get("state"), found.get("description")) == (
                        message.state,
                        message.description,
                    )
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise self._error(exc, f"GET {url}", repo, token) from exc
        return False

    async def upsert_comment(self, repo: Repository, message: CommentMessage) -> str:
        """Lists the pull request's comments (GitHub orders them by ascending id, so the first
        marked one is the oldest and paging stops there), then PATCHes it or POSTs a new one.
        A comment that already reads `body` is left as it is: no mutation spent on it."""
        check_comment(message)
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        token = await self._token(repo)
        found = await self._find_comment(repo, token, names, message)
        data = {"body": message.body}
        if found is None:
            url = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
            url_vars = {**names, "issue_number": str(message.pr_number)}
            created = await self._send(repo, token, "POST", url, url_vars, data)
            return str(created["id"])
        comment_id, body = found
        if body == message.body:
            return comment_id
        url = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
        try:
            await self._send(repo, token, "PATCH", url, {**names, "comment_id": comment_id}, data)
        except ForgeRejected as exc:
            if exc.status != 404:
                raise
            # Deleted since it was listed (the repository itself answered the listing): a retry
            # lists again and creates a new comment.
            raise ForgeUnavailable(f"PATCH {url}: comment {comment_id} is gone") from exc
        return comment_id

    async def comment_on_commit(self, repo: Repository, message: CommitCommentMessage) -> str:
        """On the merged pull request GitHub associates with the commit
        (`GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls`) as an issue comment, found
        again like the pull request's own comment; else a commit comment
        (`/repos/{owner}/{repo}/commits/{commit_sha}/comments`), found again the same way."""
        check_commit_comment(message)
        pr_number = await self._merged_by(repo, message.commit_sha)
        if pr_number is not None:
            await self.upsert_comment(repo, CommentMessage(pr_number, message.marker, message.body))
            return f"pull request #{pr_number}"
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        token = await self._token(repo)
        listing = "/repos/{owner}/{repo}/commits/{commit_sha}/comments"
        on_commit = {**names, "commit_sha": message.commit_sha}
        found = await self._find_marked(
            repo,
            token,
            f"{listing}?per_page={COMMENTS_PAGE_SIZE}",
            on_commit,
            marker=message.marker,
        )
        data = {"body": message.body}
        where = f"commit {message.commit_sha[:7]}"
        if found is None:
            await self._send(repo, token, "POST", listing, on_commit, data)
            return where
        comment_id, body = found
        if body != message.body:
            url = "/repos/{owner}/{repo}/comments/{comment_id}"
            await self._send(repo, token, "PATCH", url, {**names, "comment_id": comment_id}, data)
        return where

    async def _merged_by(self, repo: Repository, commit_sha: str) -> int | None:
        """The number of the merged pull request that brought the commit in, if any."""
        owner, name = repo.full_name.split("/", 1)
        pulls = await self._get(
            repo,
            "/repos/{owner}/{repo}/commits/{commit_sha}/pulls",
            {"owner": owner, "repo": name, "commit_sha": commit_sha},
            token=await self._token(repo),
            none_on=(404, 409, 422),
        )
        for pull in pulls if isinstance(pulls, list) else []:
            number = pull.get("number") if isinstance(pull, dict) else None
            if pull.get("merged_at") and isinstance(number, int):
                return number
        return None

    async def _find_marked(
        self,
        repo: Repository,
        token: str | None,
        url: str,
        url_vars: dict[str, str],
        *,
        marker: str,
    ) -> tuple[str, str] | None:
        """(id, body) of the first comment listed at `url` whose body starts with `marker`."""
        try:
            async with aclosing(self._api.getiter(url, url_vars, oauth_token=token)) as comments:
                async for comment in comments:
                    body = comment.get("body") or ""
                    if body.lstrip().startswith(marker):
                        return str(comment["id"]), body
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise self._error(exc, f"GET {url}", repo, token) from exc
        return None

    async def _find_comment(
        self, repo: Repository, token: str | None, names: dict[str, str], message: CommentMessage
    ) -> tuple[str, str] | None:
        """(id, body) of the oldest comment whose body starts with the marker."""
        url = "/repos/{owner}/{repo}/issues/{issue_number}/comments?per_page=" + str(
            COMMENTS_PAGE_SIZE
        )
        url_vars = {**names, "issue_number": str(message.pr_number)}
        return await self._find_marked(repo, token, url, url_vars, marker=message.marker)

    async def upsert_check_run(self, repo: Repository, message: CheckRunMessage) -> str:
        """Lists the commit's check runs of this App and name (every page: `filter=all` keeps
        the older ones, in no documented order), takes the newest with `external_id`, and
        PATCHes it, or POSTs a new one when there is none or when GitHub would not apply the
        change (see `Forge.upsert_check_run`). One that already reads so is left alone."""
        if self._app is None:
            raise ForgeRejected(
                f"check run {message.name!r} for {repo.full_name}: check runs need labci to be "
                "a GitHub App (set LABCI_GITHUB_APP_ID and LABCI_GITHUB_PRIVATE_KEY)",
                status=422,
            )
        check_check_run(message)
        owner, name = repo.full_name.split("/", 1)
        names = {"owner": owner, "repo": name}
        token = await self._token(repo)
        summary = fit_summary(message.summary)
        found = await self._find_check_run(repo, token, names, message, app_id=self._app.app_id)
        if found is not None and reads_same(found, message, summary):
            return str(found["id"])
        data = check_run_data(message, summary)
        if found is None or settled(found, message):
            url = "/repos/{owner}/{repo}/check-runs"
            data["head_sha"] = message.head_sha
            return str((await self._send(repo, token, "POST", url, names, data))["id"])
        url = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
        check_run_id = str(found["id"])
        try:
            await self._send(
                repo, token, "PATCH", url, {**names, "check_run_id": check_run_id}, data
            )
        except ForgeRejected as exc:
            if exc.status != 404:
                raise
            raise ForgeUnavailable(f"PATCH {url}: check run {check_run_id} is gone") from exc
        return check_run_id

    async def _find_check_run(
        self,
        repo: Repository,
        token: str | None,
        names: dict[str, str],
        message: CheckRunMessage,
        *,
        app_id: str,
    ) -> dict[str, Any] | None:
        """The newest (highest id) of this App's check runs with the message's external id."""
        url = (
            "/repos/{owner}/{repo}/commits/{ref}/check-runs?check_name={check_name}"
            "&filter=all&app_id={app_id}&per_page=" + str(CHECK_RUNS_PAGE_SIZE)
        )
        url_vars = {
            **names,
            "ref": message.head_sha,
            "check_name": message.name,
            "app_id": app_id,
        }
        newest: dict[str, Any] | None = None
        try:
            async with aclosing(
                self._api.getiter(url, url_vars, oauth_token=token, iterable_key="check_runs")
            ) as runs:
                async for run in runs:
                    mine = str((run.get("app") or {}).get("id")) == app_id
                    if not (mine and run.get("external_id") == message.external_id):
                        continue
                    if newest is None or int(run["id"]) > int(newest["id"]):
                        newest = run
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise self._error(exc, f"GET {url}", repo, token) from exc
        return newest

    async def _send(
        self,
        repo: Repository,
        token: str | None,
        method: str,
        url: str,
        url_vars: dict[str, str],
        data: dict[str, Any],
    ) -> Any:
        send = self._api.post if method == "POST" else self._api.patch
        try:
            return await send(url, url_vars, data=data, oauth_token=token)
        except (httpx.TransportError, gidgethub.HTTPException) as exc:
            raise self._error(exc, f"{method} {url}", repo, token) from exc
