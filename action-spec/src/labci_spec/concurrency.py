"""`concurrency:` groups, resolved when a run is planned (GitHub Actions' semantics).

A group is text rendered from the `github` and `inputs` contexts (and, for a job,
`matrix`); `cancel-in-progress` is a boolean or a condition over the same contexts. What a
group means — one member in progress and one waiting per group and repository, a newer
member cancelling the one waiting — is the server's (planning and scheduling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labci_spec.errors import ExpressionError
from labci_spec.expressions import EvalContext, evaluate_condition, render
from labci_spec.model import Concurrency

# A rendered group longer than this is refused: it is stored, indexed and compared.
MAX_RENDERED_GROUP_CHARS = 1000


@dataclass(frozen=True)
class Group:
    name: str
    cancel_in_progress: bool


def github_concurrency_context(
    github: Mapping[str, str], *, workflow: str, repository: str, run_id: int
) -> dict[str, str]:
    """`github` for a group: the condition fields plus `workflow`, `ref` (as GitHub sets
    it: `refs/heads/<branch>`, or `refs/pull/<number>/merge`), `repository` and `run_id`."""
    if github.get("event_name") == "pull_request":
        ref = f"refs/pull/{github.get('ref_name', '')}"
    else:
        ref = f"refs/heads/{github.get('ref_name', '')}"
    return {
        **github,
        "workflow": workflow,
        "ref": ref,
        "repository": repository,
        "run_id": str(run_id),
    }


def resolve_group(concurrency: Concurrency | None, contexts: Mapping[str, Any]) -> Group | None:
    """The group `concurrency` names under `contexts`; None without one, or when the group
    renders empty (`${{ github.head_ref }}` on a push: no group, as the usual
    `${{ github.head_ref || github.run_id }}` idiom expects). Raises ExpressionError."""
    if concurrency is None:
        return None
    ctx = EvalContext(contexts=dict(contexts))
    name = render(concurrency.group, ctx).strip()
    if not name:
        return None
    if len(name) > MAX_RENDERED_GROUP_CHARS:
        raise ExpressionError(
            f"the group is {len(name)} characters once rendered; the limit is"
            f" {MAX_RENDERED_GROUP_CHARS}"
        )
    flag = concurrency.cancel_in_progress
    cancel = flag if isinstance(flag, bool) else evaluate_condition(flag, ctx)
    return Group(name, cancel)
