from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from forge_standin import OpenAPIChecker, OpenAPINotInstalledError

STATUS = "POST /repos/{owner}/{repo}/statuses/{sha} (repos/create-commit-status)"
LIST = "GET /repos/{owner}/{repo}/commits/{ref}/statuses (repos/list-commit-statuses-for-ref)"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"

CASES: list[tuple[str, str, str, dict[str, Any], Any, list[str]]] = [
    (
        "status-valid",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        {"state": "success", "context": "labci/train", "description": None, "target_url": None},
        [],
    ),
    (
        "status-wrong-state",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        {"state": "done"},
        [
            f"{STATUS}: request body at state: 'done' is not one of "
            "['error', 'failure', 'pending', 'success']"
        ],
    ),
    (
        "status-context-not-string",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        {"state": "pending", "context": 3},
        [f"{STATUS}: request body at context: 3 is not of type 'string'"],
    ),
    (
        "status-missing-state",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        {"context": "x"},
        [f"{STATUS}: request body at (root): 'state' is a required property"],
    ),
    (
        "status-typo-field",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        {"state": "error", "desciption": "x"},
        [f"{STATUS}: request body has unknown property 'desciption'"],
    ),
    (
        "status-no-body",
        "POST",
        f"/repos/acme/widgets/statuses/{SHA}",
        {},
        None,
        [f"{STATUS}: missing required JSON request body"],
    ),
    (
        "unknown-path",
        "GET",
        "/repos/acme/widgets/frobnicate",
        {},
        None,
        ["GET /repos/acme/widgets/frobnicate: no path template in GitHub's REST API"],
    ),
    (
        "wrong-method",
        "DELETE",
        "/repos/acme/widgets/git/trees/main",
        {},
        None,
        [
            "DELETE /repos/acme/widgets/git/trees/main: method not defined for "
            "/repos/{owner}/{repo}/git/trees/{tree_sha}"
        ],
    ),
    (
        "multi-segment-ref-and-paging",
        "GET",
        "/repos/acme/widgets/commits/feature/x/statuses",
        {"per_page": "100", "page": "2"},
        None,
        [],
    ),
    (
        "bad-query",
        "GET",
        f"/repos/acme/widgets/commits/{SHA}/statuses",
        {"per_page": "lots", "sort": "asc"},
        None,
        [
            f"{LIST}: query parameter 'per_page'='lots' is not an integer",
            f"{LIST}: unknown query parameter 'sort'",
        ],
    ),
    (
        "contents-nested-path",
        "GET",
        "/repos/acme/widgets/contents/.labci/train.yml",
        {"ref": "main"},
        None,
        [],
    ),
    ("tree-recursive", "GET", "/repos/acme/widgets/git/trees/main", {"recursive": "1"}, None, []),
    (
        "comment-body-wrong-type",
        "PATCH",
        "/repos/acme/widgets/issues/comments/5",
        {},
        {"body": 3},
        [
            "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id} (issues/update-comment): "
            "request body at body: 3 is not of type 'string'"
        ],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_check(
    checker: OpenAPIChecker,
    method: str,
    path: str,
    query: dict[str, Any],
    body: Any,
    expected: list[str],
) -> None:
    assert checker.check(method, path, query, body) == expected


def test_loads_quickly_from_the_npm_package() -> None:
    OpenAPIChecker._cache.clear()
    started = time.perf_counter()
    fresh = OpenAPIChecker()
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    assert fresh.spec_file.name == "api.github.com.json"
    assert fresh.spec_file.parent.parent.name == "openapi"
    assert fresh.version


def test_missing_package_is_an_error_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(OpenAPINotInstalledError, match=r"npm ci --prefix tests/forge_standin"):
        OpenAPIChecker(tmp_path / "node_modules" / "api.github.com.json")
