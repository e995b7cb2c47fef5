"""Check runs on the stand-in, shaped as GitHub's ``check-run``.

The JSON of ``checks/create``, ``checks/update`` and ``checks/list-for-ref`` in
``@octokit/openapi``, and GitHub's refusals of a request body. The handlers in ``app.py``
find the repository, the commit and the caller's App and page the listing; ``CheckRunStore``
keeps the runs (thread-safe: the stand-in answers from uvicorn's thread while tests read from
theirs), ``changes`` turns a request body into new field values, ``select`` filters a listing
and ``render`` turns one run into JSON for the base URL of the request being answered.

What GitHub leaves unclear, and what the stand-in chose:
- Only an installation token may create or update a check run (GitHub: "You must
  authenticate via a GitHub App"), and only the App that created a run may update it.
- A completed check run keeps its status and conclusion: an update that changes either is
  answered 200 and applied to the other fields only (GitHub's behaviour as integrators report
  it; its documentation does not say).
- A conclusion sets the status to ``completed`` (documented); ``started_at`` defaults to the
  creation time and ``completed_at`` to the time the run completed.
- Listings are newest first. ``filter=latest`` (the default) keeps the newest run of each
  name and App; ``filter=all`` keeps every run.
- ``output.summary`` and ``output.text`` over 65,535 characters are refused with 422.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

from .compare import PullRequest, Site

FIRST_CHECK_RUN_ID = 3_000_000_001
MAX_OUTPUT_CHARS = 65_535
STATUSES = ("queued", "in_progress", "completed")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "timed_out",
)

AppFactory = Callable[[int], dict[str, Any]]  # app id -> GitHub's integration object


@dataclass(frozen=True)
class CheckRun:
    id: int
    head_sha: str
    name: str
    app_id: int
    external_id: str
    status: str
    conclusion: str | None
    title: str | None
    summary: str | None
    text: str | None
    details_url: str | None  # None: the App's homepage is shown
    started_at: str
    completed_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "head_sha": self.head_sha,
            "name": self.name,
            "app_id": self.app_id,
            "external_id": self.external_id,
            "status": self.status,
            "conclusion": self.conclusion,
            "title": self.title,
            "summary": self.summary,
            "text": self.text,
            "details_url": self.details_url,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


Key = tuple[str, str]  # (owner, repo), lower-case: GitHub's names are case-insensitive


@dataclass
class CheckRunStore:
    """Every check run of every repository, in creation order (ascending id)."""

    _by_repo: dict[Key, list[CheckRun]] = field(default_factory=dict)
    _next_id: int = FIRST_CHECK_RUN_ID
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, owner: str, repo: str, values: Mapping[str, Any]) -> CheckRun:
        """A new run from ``values`` (``head_sha``, ``name``, ``app_id`` and any of
        ``changes``'s fields)."""
        now = now_text()
        status = values.get("status", "queued")
        with self._lock:
            run = CheckRun(
                id=self._next_id,
                head_sha=values["head_sha"],
                name=values["name"],
                app_id=values["app_id"],
                external_id=values.get("external_id", ""),
                status=status,
                conclusion=values.get("conclusion"),
                title=values.get("title"),
                summary=values.get("summary"),
                text=values.get("text"),
                details_url=values.get("details_url"),
                started_at=values.get("started_at") or now,
                completed_at=values.get("completed_at") or (now if status == "completed" else None),
            )
            self._next_id += 1
            self._by_repo.setdefault(_key(owner, repo), []).append(run)
        return run

    def update(
        self, owner: str, repo: str, run_id: int, values: Mapping[str, Any]
    ) -> CheckRun | None:
        """The updated run; None when the repository has no run with that id. A completed run
        keeps its status and conclusion."""
        with self._lock:
            runs = self._by_repo.get(_key(owner, repo), [])
            for i, old in enumerate(runs):
                if old.id != run_id:
                    continue
                values = dict(values)
                if old.status == "completed":
                    values.pop("status", None)
                    values.pop("conclusion", None)
                    values.pop("completed_at", None)
                elif values.get("status") == "completed" and not values.get("completed_at"):
                    values["completed_at"] = now_text()
                runs[i] = replace(old, **values)
                return runs[i]
        return None

    def get(self, owner: str, repo: str, run_id: int) -> CheckRun | None:
        with self._lock:
            return next(
                (r for r in self._by_repo.get(_key(owner, repo), []) if r.id == run_id), None
            )

    def on_commit(self, owner: str, repo: str, sha: str) -> list[CheckRun]:
        with self._lock:
            return [r for r in self._by_repo.get(_key(owner, repo), []) if r.head_sha == sha]

    def clear(self) -> None:
        """Forget the runs; ids keep counting up, as GitHub never reuses one."""
        with self._lock:
            self._by_repo.clear()


def _key(owner: str, repo: str) -> Key:
    return owner.lower(), repo.lower()


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes(payload: Any, *, creating: bool, doc: str) -> dict[str, Any] | JSONResponse:
    """The fields a create or update request sets, or GitHub's 422 refusing it."""
    if not isinstance(payload, dict):
        return _invalid("the request body is not a JSON object", doc)
    required = ("name", "head_sha") if creating else ()
    for name in required:
        if not isinstance(payload.get(name), str):
            return _invalid(f'"{name}" wasn\'t supplied.', doc)
    if "name" in payload and not str(payload["name"]).strip():
        return _failed("name", "missing_field", "name can't be blank", doc)
    out: dict[str, Any] = {
        k: payload[k]
        for k in ("head_sha", "name", "external_id", "details_url", "started_at", "completed_at")
        if isinstance(payload.get(k), str) and (creating or k != "head_sha")
    }
    status, conclusion = payload.get("status"), payload.get("conclusion")
    if status is not None and status not in STATUSES:
        return _invalid(f"For 'properties/status', {status!r} is not a possible value.", doc)
    if conclusion is not None and conclusion not in CONCLUSIONS:
        return _invalid(
            f"For 'properties/conclusion', {conclusion!r} is not a possible value.", doc
        )
    if conclusion is not None:
        status = "completed"  # documented: a conclusion completes the run
    elif status == "completed" or "completed_at" in out:
        return _failed("conclusion", "missing_field", "conclusion is required", doc)
    if status is not None:
        out["status"] = status
        out["conclusion"] = conclusion
    output = payload.get("output")
    if output is not None:
        refused = _output_error(output, creating=creating, doc=doc)
        if refused is not None:
            return refused
        out |= {k: output[k] for k in ("title", "summary", "text") if k in output}
    return out


def _output_error(output: Any, *, creating: bool, doc: str) -> JSONResponse | None:
    if not isinstance(output, dict):
        return _invalid("For 'properties/output', it is not an object.", doc)
    for name in ("title", "summary") if creating else ("summary",):
        if not isinstance(output.get(name), str):
            return _invalid(f'"{name}" wasn\'t supplied in output.', doc)
    for name in ("summary", "text"):
        if len(output.get(name) or "") > MAX_OUTPUT_CHARS:
            message = f"Output {name} is too long (maximum is {MAX_OUTPUT_CHARS} characters)"
            return _failed(f"output.{name}", "custom", message, doc)
    return None


def select(runs: list[CheckRun], query: Mapping[str, Any]) -> list[CheckRun]:
    """The runs a listing shows for ``query`` (``check_name``, ``status``, ``app_id``,
    ``filter``), newest first."""
    name, status, app_id = query.get("check_name"), query.get("status"), query.get("app_id")
    shown = [
        r
        for r in sorted(runs, key=lambda r: r.id, reverse=True)
        if (name is None or r.name == name)
        and (status is None or r.status == status)
        and (app_id is None or str(r.app_id) == app_id)
    ]
    if query.get("filter", "latest") == "all":
        return shown
    seen: set[tuple[int, str]] = set()
    latest = []
    for r in shown:
        if (r.app_id, r.name) not in seen:
            seen.add((r.app_id, r.name))
            latest.append(r)
    return latest


def render(
    site: Site,
    run: CheckRun,
    app: dict[str, Any],
    pull_requests: list[dict[str, Any]],
) -> dict[str, Any]:
    """GitHub's ``check-run`` for ``run``; ``app`` is its App's integration object and
    ``pull_requests`` the open pull requests whose head is the run's commit."""
    url = f"{site.api}/check-runs/{run.id}"
    return {
        "id": run.id,
        "name": run.name,
        "node_id": base64.b64encode(f"08:CheckRun{run.id}".encode()).decode(),
        "head_sha": run.head_sha,
        "external_id": run.external_id,
        "url": url,
        "html_url": f"{site.html}/runs/{run.id}",
        "details_url": run.details_url or app["external_url"],
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "output": {
            "title": run.title,
            "summary": run.summary,
            "text": run.text,
            "annotations_count": 0,
            "annotations_url": f"{url}/annotations",
        },
        "check_suite": {"id": check_suite_id(site, run)},
        "app": app,
        "pull_requests": pull_requests,
    }


def check_suite_id(site: Site, run: CheckRun) -> int:
    """GitHub makes one check suite per commit and App; a stable id for it."""
    key = f"{site.owner}/{site.repo}@{run.head_sha}#{run.app_id}".lower()
    return 4_000_000_000 + zlib.crc32(key.encode())


def pull_requests_at(
    site: Site, pulls: list[PullRequest], sha: str, resolve: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """The open pull requests whose head is ``sha`` (``resolve`` turns a ref into the commit
    it names now), as GitHub's ``pull-request-minimal``."""
    out = []
    for pr in sorted(pulls, key=lambda p: p.number):
        if resolve(pr.head_ref) == sha:
            base = resolve(pr.base_ref) or ""
            out.append(_pull_request_minimal(site, pr, (pr.head_ref, sha), (pr.base_ref, base)))
    return out


def _pull_request_minimal(
    site: Site, pr: PullRequest, head: tuple[str, str], base: tuple[str, str]
) -> dict[str, Any]:
    """GitHub's ``pull-request-minimal``; ``head`` and ``base`` are (ref, sha)."""
    number = pr.number
    repo_id = zlib.crc32(f"{site.owner}/{site.repo}".encode())  # as app.py's repository
    repo = {"id": repo_id, "url": site.api, "name": site.repo}
    return {
        "id": 5_000_000_000 + zlib.crc32(f"{site.owner}/{site.repo}#{number}".lower().encode()),
        "number": number,
        "url": f"{site.api}/pulls/{number}",
        "head": {"ref": head[0], "sha": head[1], "repo": repo},
        "base": {"ref": base[0], "sha": base[1], "repo": repo},
    }


def _invalid(reason: str, doc: str) -> JSONResponse:
    """A request that fails GitHub's schema check (it names no ``errors``)."""
    return JSONResponse(
        {"message": f"Invalid request.\n\n{reason}", "documentation_url": doc, "status": "422"},
        422,
    )


def _failed(fld: str, code: str, message: str, doc: str) -> JSONResponse:
    error = {"resource": "CheckRun", "code": code, "field": fld, "message": message}
    return JSONResponse(
        {
            "message": "Validation Failed",
            "errors": [error],
            "documentation_url": doc,
            "status": "422",
        },
        422,
    )
