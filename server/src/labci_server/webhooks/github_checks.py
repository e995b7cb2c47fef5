"""GitHub App webhooks about check runs: a re-run asked for on one of labci's checks.

When someone clicks "Re-run" on a check run, GitHub sends `check_run` with action
`rerequested` to the App that created it (and only to it, though labci checks the App id
anyway: a check run created by another App is not labci's to re-run). Every App webhook
carries the installation it was delivered for, which is how labci learns the installation
that covers a repository.

Pure functions on the decoded payload; verifying the signature comes first
(`webhooks.github.verify_delivery`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequest

_SHA = re.compile(r"[0-9a-f]{40}\Z")


@dataclass(frozen=True)
class CheckRunRequest:
    """A re-run asked for on one of labci's check runs."""

    repo_full_name: str
    installation_id: int
    head_sha: str
    external_id: str  # labci's id for the check, as labci created it ("" if none was given)
    name: str
    check_run_id: int


def parse_check_run(payload: Mapping[str, Any], *, app_id: int | str) -> CheckRunRequest | None:
    """The re-run a `check_run` delivery asks of App `app_id`; None for any other action and
    for another App's check run. Raises `BadRequest` naming the field when a field labci needs
    is missing or malformed."""
    if not isinstance(payload, Mapping):
        raise BadRequest("check_run payload is not a JSON object")
    action = payload.get("action")
    if not isinstance(action, str):
        raise BadRequest("check_run payload: `action` is missing or not text")
    if action != "rerequested":
        return None
    run = _object(payload, "check_run")
    app = _object(run, "app", where="check_run.app")
    if str(_integer(app, "id", where="check_run.app.id")) != str(app_id).strip():
        return None
    head_sha = run.get("head_sha")
    if not isinstance(head_sha, str) or not _SHA.match(head_sha):
        raise BadRequest(f"check_run.head_sha: expected a 40-hex commit sha, got {head_sha!r:.60}")
    name = run.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("check_run.name is missing or not text")
    external_id = run.get("external_id")
    if external_id is not None and not isinstance(external_id, str):
        raise BadRequest("check_run.external_id is not text")
    installation_id = installation_id_of(payload)
    if installation_id is None:
        raise BadRequest("check_run payload has no `installation`: not delivered to a GitHub App")
    full_name = _object(payload, "repository").get("full_name")
    if not isinstance(full_name, str) or full_name.count("/") != 1:
        raise BadRequest("repository.full_name is missing or not owner/name")
    return CheckRunRequest(
        repo_full_name=full_name,
        installation_id=installation_id,
        head_sha=head_sha,
        external_id=external_id or "",
        name=name,
        check_run_id=_integer(run, "id", where="check_run.id"),
    )


def installation_id_of(payload: Mapping[str, Any]) -> int | None:
    """The `installation.id` an App webhook carries; None when there is none (a repository
    webhook, not an App's). Raises `BadRequest` when it is there but not an id."""
    installation = payload.get("installation")
    if installation is None:
        return None
    if not isinstance(installation, Mapping):
        raise BadRequest("`installation` is not an object")
    return _integer(installation, "id", where="installation.id")


def _object(parent: Mapping[str, Any], key: str, *, where: str | None = None) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise BadRequest(f"`{where or key}` is missing or not an object")
    return value


def _integer(parent: Mapping[str, Any], key: str, *, where: str) -> int:
    value = parent.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"`{where}` is missing or not a positive integer: {value!r:.40}")
    return value
