"""Which workflows an event triggers: branch globs in the style of GitHub Actions.

Glob syntax, matched against the whole branch name:
`*` any characters except '/', `**` any characters including '/', `?` exactly
one character except '/', a leading `!` negates; everything else is literal.
Patterns apply in order and the last one that matches decides, so
`["release/**", "!release/old"]` takes every release branch but one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from labci_spec.model import Workflow

_WILDCARDS = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


@lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    pieces = re.split(r"(\*\*|\*|\?)", pattern)
    regex = "".join(_WILDCARDS.get(piece) or re.escape(piece) for piece in pieces)
    return re.compile(regex, re.DOTALL)


def branch_matches(patterns: list[str] | None, branch: str) -> bool:
    """Whether `branch` passes the filter; None matches every branch, [] none."""
    if patterns is None:
        return True
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern[1:] if negated else pattern
        if _glob_regex(glob).fullmatch(branch):
            matched = not negated
    return matched


def workflow_matches(workflow: Workflow, event: str, branch: str) -> bool:
    """Whether `event` on `branch` triggers `workflow`.

    `event` is "push" (`branch` is the pushed branch) or "pull_request" (`branch`
    is the pull request's base branch). Any other event triggers nothing.
    """
    if event == "push":
        branch_filter = workflow.on.push
    elif event == "pull_request":
        branch_filter = workflow.on.pull_request
    else:
        return False
    return branch_filter is not None and branch_matches(branch_filter.branches, branch)
