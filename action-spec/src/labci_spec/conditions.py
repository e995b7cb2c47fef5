"""`if:` on jobs and steps: GitHub's rule of an implied `success()`, over a safe language.

A condition that calls none of the status functions (`success()`, `failure()`,
`always()`, `cancelled()`) runs only when everything before it succeeded, as if written
`success() && (...)`. For a job, "before" is the jobs it `needs`; for a step, the
earlier steps of its job. The expression language is `labci_spec.expressions`: no
arbitrary code, only the contexts handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labci_spec.expressions import (
    EvalContext,
    condition_source,
    evaluate,
    functions_called,
    is_truthy,
    parse_expression,
)

STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")
# The `github` fields a condition may read; none of them is spliced into a command.
GITHUB_CONDITION_FIELDS = ("event_name", "ref_name", "base_ref", "head_ref", "sha")
# `concurrency:` groups may also name the workflow, the full ref, the repository and the
# run, as GitHub's usual `${{ github.workflow }}-${{ github.ref }}` does.
GITHUB_CONCURRENCY_FIELDS = (*GITHUB_CONDITION_FIELDS, "workflow", "ref", "repository", "run_id")


@dataclass(frozen=True)
class Progress:
    """How what came before went: needed jobs for a job, earlier steps for a step.

    `skipped`: something needed did not run (its own `if:` was false); `success()` is
    then false, as in GitHub Actions, but `failure()` is not true either.
    """

    failed: bool = False
    cancelled: bool = False
    skipped: bool = False


def github_context(
    *, event: str, branch: str, base_branch: str | None, sha: str, pr_number: int | None
) -> dict[str, str]:
    """The `github` fields of GITHUB_CONDITION_FIELDS, as GitHub Actions sets them."""
    if event == "pull_request":
        return {
            "event_name": event,
            "ref_name": f"{pr_number}/merge",
            "base_ref": base_branch or "",
            "head_ref": branch,
            "sha": sha,
        }
    return {"event_name": event, "ref_name": branch, "base_ref": "", "head_ref": "", "sha": sha}


def should_run(
    condition: str | None, *, contexts: Mapping[str, Any], progress: Progress = Progress()
) -> bool:
    """Whether a job or step with this `if:` runs; raises ExpressionError if it cannot tell."""
    succeeded = not (progress.failed or progress.cancelled or progress.skipped)
    if condition is None:
        return succeeded
    source, offset = condition_source(condition)
    tree = parse_expression(source, base_offset=offset)
    functions = {
        "success": lambda: succeeded,
        "failure": lambda: progress.failed,
        "always": lambda: True,
        "cancelled": lambda: progress.cancelled,
    }
    value = is_truthy(evaluate(tree, EvalContext(contexts=contexts, functions=functions)))
    if not any(name in STATUS_FUNCTIONS for name, _ in functions_called(tree)):
        return succeeded and value
    return value
