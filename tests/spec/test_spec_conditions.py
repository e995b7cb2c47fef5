"""`if:` decisions: GitHub's implied `success()`, the status functions, and `github` facts."""

from __future__ import annotations

from typing import Any

import pytest

from labci_spec import ExpressionError, Progress, github_context, should_run

GITHUB_PUSH = github_context(
    event="push", branch="main", base_branch=None, sha="abc123", pr_number=None
)
CONTEXTS: dict[str, Any] = {
    "github": GITHUB_PUSH,
    "matrix": {"seed": 1, "gpu": "a100"},
    "inputs": {"fast": True},
    "env": {"MODE": "full"},
}
OK = Progress()
FAILED = Progress(failed=True)
CANCELLED = Progress(cancelled=True)
BOTH = Progress(failed=True, cancelled=True)

# condition, then whether it runs after: success, a failure, a cancel, a failure and a cancel
TRUTH_TABLE: list[tuple[str, str | None, tuple[bool, bool, bool, bool]]] = [
    ("no-condition-is-success", None, (True, False, False, False)),
    ("true-implies-success", "true", (True, False, False, False)),
    ("false", "false", (False, False, False, False)),
    ("success", "success()", (True, False, False, False)),
    ("always", "always()", (True, True, True, True)),
    ("failure", "failure()", (False, True, False, True)),
    ("cancelled", "cancelled()", (False, False, True, True)),
    ("not-cancelled", "!cancelled()", (True, True, False, False)),
    ("success-or-failure", "success() || failure()", (True, True, False, True)),
    ("wrapped-always", "${{ always() }}", (True, True, True, True)),
    ("status-function-any-case", "Always()", (True, True, True, True)),
    ("matrix-implies-success", "matrix.seed == 1", (True, False, False, False)),
    ("matrix-false", "matrix.seed == 2", (False, False, False, False)),
    ("failure-and-matrix", "failure() && matrix.gpu == 'A100'", (False, True, False, True)),
    ("always-and-false", "always() && false", (False, False, False, False)),
    ("github-branch", "github.ref_name == 'main'", (True, False, False, False)),
    ("github-event", "${{ github.event_name == 'pull_request' }}", (False, False, False, False)),
    ("inputs", "inputs.fast", (True, False, False, False)),
    ("env", "env.MODE != 'quick'", (True, False, False, False)),
    ("empty-string-is-false", "''", (False, False, False, False)),
    ("non-empty-string-is-true", "'no'", (True, False, False, False)),
    ("zero-is-false", "0", (False, False, False, False)),
    ("missing-property-is-null", "matrix.nope", (False, False, False, False)),
    ("wrapped-value-implies-success", "${{ matrix.seed }}", (True, False, False, False)),
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [case[1:] for case in TRUTH_TABLE],
    ids=[case[0] for case in TRUTH_TABLE],
)
def test_should_run(condition: str | None, expected: tuple[bool, bool, bool, bool]) -> None:
    got = tuple(
        should_run(condition, contexts=CONTEXTS, progress=progress)
        for progress in (OK, FAILED, CANCELLED, BOTH)
    )
    assert got == expected


def test_default_progress_is_success() -> None:
    assert should_run("success()", contexts=CONTEXTS) is True


ERROR_CASES = [
    ("incomplete", "matrix.seed ==", "expected a value, found the end of the expression", 14),
    (
        "half-wrapped",
        "${{ false }} && always()",
        "unexpected '$'; an expression cannot contain another '${{ }}'",
        0,
    ),
    (
        "unknown-function",
        "rm('-rf')",
        "unknown function 'rm'; use contains, startsWith, endsWith, format, join, toJSON,"
        " fromJSON, success, failure, always, cancelled, hashFiles",
        0,
    ),
    ("assignment", "matrix.seed = 1", "unexpected '='; compare with '=='", 12),
]


@pytest.mark.parametrize(
    ("condition", "message", "offset"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_conditions_that_cannot_be_decided(condition: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        should_run(condition, contexts=CONTEXTS)
    assert (caught.value.message, caught.value.offset) == (message, offset)


GITHUB_CASES = [
    (
        "push",
        {"event": "push", "branch": "main", "base_branch": None, "sha": "s1", "pr_number": None},
        {"event_name": "push", "ref_name": "main", "base_ref": "", "head_ref": "", "sha": "s1"},
    ),
    (
        "pull-request",
        {
            "event": "pull_request",
            "branch": "fix/x",
            "base_branch": "main",
            "sha": "s2",
            "pr_number": 7,
        },
        {
            "event_name": "pull_request",
            "ref_name": "7/merge",
            "base_ref": "main",
            "head_ref": "fix/x",
            "sha": "s2",
        },
    ),
    (
        "schedule",
        {
            "event": "schedule",
            "branch": "main",
            "base_branch": None,
            "sha": "s3",
            "pr_number": None,
        },
        {"event_name": "schedule", "ref_name": "main", "base_ref": "", "head_ref": "", "sha": "s3"},
    ),
]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [case[1:] for case in GITHUB_CASES],
    ids=[case[0] for case in GITHUB_CASES],
)
def test_github_context(facts: dict[str, Any], expected: dict[str, str]) -> None:
    assert github_context(**facts) == expected


def test_a_hostile_branch_name_is_compared_never_run() -> None:
    github = github_context(
        event="pull_request",
        branch='a"; touch pwned #$(id)`id`',
        base_branch="main",
        sha="s",
        pr_number=1,
    )
    contexts = {**CONTEXTS, "github": github}
    assert should_run("github.head_ref == 'main'", contexts=contexts) is False
    assert should_run("contains(github.head_ref, '$(id)')", contexts=contexts) is True
