"""Branch globs and workflow triggering, table-driven."""

from __future__ import annotations

import pytest

from labci_spec import BranchFilter, Job, Step, Triggers, Workflow, branch_matches, workflow_matches

GLOB_CASES = [
    ("none-matches-all", None, "any/thing", True),
    ("empty-matches-none", [], "main", False),
    ("exact", ["main"], "main", True),
    ("exact-no-prefix", ["main"], "main2", False),
    ("star", ["feature/*"], "feature/x", True),
    ("star-not-slash", ["feature/*"], "feature/x/y", False),
    ("star-empty", ["feature/*"], "feature/", True),
    ("double-star", ["feature/**"], "feature/x/y", True),
    ("double-star-anywhere", ["**-rc"], "release/1.0-rc", True),
    ("star-middle", ["rel*se"], "release", True),
    ("question", ["v?"], "v1", True),
    ("question-one-char", ["v?"], "v10", False),
    ("question-not-slash", ["a?b"], "a/b", False),
    ("dot-literal", ["v1.0"], "v1x0", False),
    ("regex-chars-literal", ["fix+(a)"], "fix+(a)", True),
    ("bracket-literal", ["[ab]"], "a", False),
    ("negation-only", ["!main"], "dev", False),
    ("negation-after", ["**", "!main"], "main", False),
    ("negation-after-other", ["**", "!main"], "dev", True),
    ("last-match-wins", ["!release/**", "release/1.*"], "release/1.2", True),
    ("last-match-wins-2", ["release/**", "!release/old*"], "release/old-1", False),
    ("second-pattern", ["main", "dev"], "dev", True),
    ("newline-not-trailing", ["main"], "main\n", False),
]


@pytest.mark.parametrize(
    ("patterns", "branch", "expected"),
    [case[1:] for case in GLOB_CASES],
    ids=[case[0] for case in GLOB_CASES],
)
def test_branch_matches(patterns: list[str] | None, branch: str, expected: bool) -> None:
    assert branch_matches(patterns, branch) is expected


def workflow(on: Triggers) -> Workflow:
    job = Job(id="a", runs_on=["cpu"], steps=[Step(run="true")])
    return Workflow(path=".labci/a.yml", name="a", on=on, jobs={"a": job})


PUSH_MAIN = Triggers(push=BranchFilter(branches=["main"]))
PR_ANY = Triggers(pull_request=BranchFilter())

TRIGGER_CASES = [
    ("push-main", PUSH_MAIN, "push", "main", True),
    ("push-other-branch", PUSH_MAIN, "push", "dev", False),
    ("pr-not-listed", PUSH_MAIN, "pull_request", "main", False),
    ("pr-any-base", PR_ANY, "pull_request", "dev", True),
    ("push-not-listed", PR_ANY, "push", "main", False),
    ("unknown-event", PR_ANY, "schedule", "main", False),
]


@pytest.mark.parametrize(
    ("on", "event", "branch", "expected"),
    [case[1:] for case in TRIGGER_CASES],
    ids=[case[0] for case in TRIGGER_CASES],
)
def test_workflow_matches(on: Triggers, event: str, branch: str, expected: bool) -> None:
    assert workflow_matches(workflow(on), event, branch) is expected
