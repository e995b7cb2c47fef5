"""Which workflows an event starts: branch globs, then `workflow_matches` over EventFacts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from spec_corpus import load, on_with

from labci_spec import EventFacts, branch_matches, needs_changed_files, workflow_matches

GLOB_CASES = [
    ("none-matches-all", None, "any/thing", True),
    ("empty-matches-none", [], "main", False),
    ("exact", ["main"], "main", True),
    ("exact-no-prefix", ["main"], "main2", False),
    ("star", ["feature/*"], "feature/x", True),
    ("star-not-slash", ["feature/*"], "feature/x/y", False),
    ("double-star", ["feature/**"], "feature/x/y", True),
    ("double-star-anywhere", ["**-rc"], "release/1.0-rc", True),
    ("star-middle", ["rel*se"], "release", True),
    ("star-empty", ["feature/*"], "feature/", True),
    # GitHub's `?` and `+` repeat the preceding character; they are not `.` of a regex.
    ("question-zero", ["v1?"], "v", True),
    ("question-one", ["v1?"], "v1", True),
    ("question-not-two", ["v1?"], "v11", False),
    ("question-not-any-char", ["v?"], "v1", False),
    ("plus-one-or-more", ["v1+"], "v111", True),
    ("plus-not-zero", ["v1+"], "v", False),
    ("escaped-plus-literal", ["fix\\+(a)"], "fix+(a)", True),
    ("parens-literal", ["fix(a)"], "fix(a)", True),
    ("dot-literal", ["v1.0"], "v1x0", False),
    ("bracket-class", ["releases/v[12]"], "releases/v2", True),
    ("bracket-class-miss", ["releases/v[12]"], "releases/v3", False),
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


def push(branch: str = "main", files: Sequence[str] | None = None) -> EventFacts:
    return EventFacts(kind="push", branch=branch, changed_files=files)


def pr(
    action: str | None = "opened", base: str = "main", files: Sequence[str] | None = None
) -> EventFacts:
    return EventFacts(kind="pull_request", branch=base, action=action, changed_files=files)


MATCH_CASES = [
    # event kinds
    ("push-any", "push", push(), True),
    ("push-not-listened", "pull_request", push(), False),
    ("pr-not-listened", "push", pr(), False),
    ("dispatch", "workflow_dispatch", EventFacts("workflow_dispatch", "main"), True),
    ("dispatch-not-listened", "push", EventFacts("workflow_dispatch", "main"), False),
    ("schedule", "{schedule: [{cron: '0 3 * * *'}]}", EventFacts("schedule", "main"), True),
    ("schedule-not-listened", "[push, pull_request]", EventFacts("schedule", "main"), False),
    (
        "branch-filter-ignores-schedule",
        "{push: {branches: [x]}, schedule: [{cron: '0 3 * * *'}]}",
        EventFacts("schedule", "main"),
        True,
    ),
    (
        "unknown-kind",
        "[push, pull_request, workflow_dispatch]",
        EventFacts("release", "main"),
        False,
    ),
    # pull_request activity types
    ("pr-opened", "pull_request", pr("opened"), True),
    ("pr-synchronize", "pull_request", pr("synchronize"), True),
    ("pr-reopened", "pull_request", pr("reopened"), True),
    ("pr-ready-not-default", "pull_request", pr("ready_for_review"), False),
    ("pr-closed-never", "pull_request", pr("closed"), False),
    ("pr-no-action-is-opened", "pull_request", pr(None), True),
    (
        "pr-types-only-ready",
        "{pull_request: {types: [ready_for_review]}}",
        pr("ready_for_review"),
        True,
    ),
    (
        "pr-types-only-ready-opened",
        "{pull_request: {types: ready_for_review}}",
        pr("opened"),
        False,
    ),
    # branches / branches-ignore (a pull request's base branch)
    ("branches-hit", "{push: {branches: [main, 'release/**']}}", push("release/1/2"), True),
    ("branches-miss", "{push: {branches: [main]}}", push("dev"), False),
    ("branches-negated", "{push: {branches: ['**', '!wip/*']}}", push("wip/x"), False),
    ("branches-ignore-hit", "{push: {branches-ignore: ['wip/**']}}", push("wip/a/b"), False),
    ("branches-ignore-miss", "{push: {branches-ignore: ['wip/**']}}", push("main"), True),
    ("pr-base-branch", "{pull_request: {branches: [main]}}", pr(base="main"), True),
    ("pr-other-base", "{pull_request: {branches: [main]}}", pr(base="dev"), False),
    # paths / paths-ignore; changed_files None means "unknown": filters let it through
    ("paths-unknown-files", "{push: {paths: ['src/**']}}", push(files=None), True),
    ("paths-no-files", "{push: {paths: ['src/**']}}", push(files=[]), False),
    ("paths-hit", "{push: {paths: ['src/**']}}", push(files=["README.md", "src/a/b.py"]), True),
    ("paths-miss", "{push: {paths: ['src/**']}}", push(files=["README.md"]), False),
    (
        "paths-negated-all",
        "{push: {paths: ['src/**', '!src/docs/**']}}",
        push(files=["src/docs/a.md"]),
        False,
    ),
    (
        "paths-negated-one-left",
        "{push: {paths: ['src/**', '!src/docs/**']}}",
        push(files=["src/docs/a.md", "src/b.py"]),
        True,
    ),
    ("paths-ignore-unknown", "{push: {paths-ignore: ['docs/**']}}", push(files=None), True),
    ("paths-ignore-no-files", "{push: {paths-ignore: ['docs/**']}}", push(files=[]), False),
    (
        "paths-ignore-all-ignored",
        "{pull_request: {paths-ignore: ['docs/**', '*.md']}}",
        pr(files=["docs/a.md", "README.md"]),
        False,
    ),
    (
        "paths-ignore-one-not",
        "{pull_request: {paths-ignore: ['docs/**', '*.md']}}",
        pr(files=["docs/a.md", "src/x.py"]),
        True,
    ),
    (
        "branch-and-paths-both-needed",
        "{push: {branches: [main], paths: ['src/**']}}",
        push("dev", files=["src/a.py"]),
        False,
    ),
]


@pytest.mark.parametrize(
    ("on", "event", "expected"),
    [case[1:] for case in MATCH_CASES],
    ids=[case[0] for case in MATCH_CASES],
)
def test_workflow_matches(on: str, event: EventFacts, expected: bool) -> None:
    assert workflow_matches(load(on_with(on)), event) is expected


NEEDS_FILES_CASES = [
    ("no-paths", "push", "push", False),
    ("push-paths", "{push: {paths: [a]}}", "push", True),
    ("push-paths-asked-for-pr", "{push: {paths: [a]}}", "pull_request", False),
    ("pr-paths-ignore", "{pull_request: {paths-ignore: [a]}}", "pull_request", True),
    ("dispatch", "workflow_dispatch", "workflow_dispatch", False),
    ("schedule", "{schedule: [{cron: '0 0 * * *'}]}", "schedule", False),
]


@pytest.mark.parametrize(
    ("on", "kind", "expected"),
    [case[1:] for case in NEEDS_FILES_CASES],
    ids=[case[0] for case in NEEDS_FILES_CASES],
)
def test_needs_changed_files(on: str, kind: str, expected: bool) -> None:
    assert needs_changed_files(load(on_with(on)), kind) is expected
