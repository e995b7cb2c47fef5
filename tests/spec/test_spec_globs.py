"""GitHub filter patterns: every example of GitHub's cheat sheet, table-driven, plus our edges.

The CHEAT_SHEET rows are the "Patterns to match branches and tags" and "Patterns to
match file paths" tables of "Workflow syntax for GitHub Actions" (github/docs,
content/actions/reference/workflows-and-actions/workflow-syntax.md): the pattern(s),
the example matches GitHub lists, and non-matches that the row's description implies.
"""

from __future__ import annotations

import pytest

from labci_spec.globs import (
    MAX_PATTERN_CHARS,
    branches_pass,
    glob_matches,
    match_patterns,
    paths_pass,
    pattern_problem,
)

# (id, patterns, matching values, non-matching values)
CHEAT_SHEET: list[tuple[str, list[str], list[str], list[str]]] = [
    # Patterns to match branches and tags
    (
        "branch-feature-star",
        ["feature/*"],
        ["feature/my-branch", "feature/your-branch"],
        ["feature/beta-a/my-branch", "feature", "my-feature/x"],
    ),
    (
        "branch-feature-globstar",
        ["feature/**"],
        ["feature/beta-a/my-branch", "feature/your-branch", "feature/mona/the/octocat"],
        ["feature", "features/x"],
    ),
    ("branch-exact-main", ["main"], ["main"], ["main2", "my-main", "Main"]),
    (
        "branch-exact-slash",
        ["releases/mona-the-octocat"],
        ["releases/mona-the-octocat"],
        ["releases/mona-the-octocat2", "releases/mona"],
    ),
    ("branch-star", ["*"], ["main", "releases"], ["feature/x"]),
    ("branch-globstar", ["**"], ["all/the/branches", "every/tag"], []),
    (
        "branch-star-prefix",
        ["*feature"],
        ["mona-feature", "feature", "ver-10-feature"],
        ["feature-1", "a/feature"],
    ),
    ("branch-v2-star", ["v2*"], ["v2", "v2.0", "v2.9"], ["v1", "v3.0", "v2/x"]),
    (
        "branch-semver",
        ["v[12].[0-9]+.[0-9]+"],
        ["v1.10.1", "v2.0.0"],
        ["v3.0.0", "v1..1", "v1.0", "v1.x.1", "v12.0.0"],
    ),
    # Patterns to match file paths
    ("path-star", ["*"], ["README.md", "server.rb"], ["docs/file.txt"]),
    ("path-optional", ["*.jsx?"], ["page.js", "page.jsx"], ["page.jsxx", "page.j", "src/page.js"]),
    ("path-globstar", ["**"], ["all/the/files.md"], []),
    ("path-star-js", ["*.js"], ["app.js", "index.js"], ["js/index.js", "app.jsx"]),
    (
        "path-globstar-js",
        ["**.js"],
        ["index.js", "js/index.js", "src/js/app.js"],
        ["index.jsx", "js/index.ts"],
    ),
    (
        "path-docs-star",
        ["docs/*"],
        ["docs/README.md", "docs/file.txt"],
        ["docs/mona/octocat.txt", "README.md"],
    ),
    (
        "path-docs-globstar",
        ["docs/**"],
        ["docs/README.md", "docs/mona/octocat.txt"],
        ["README.md", "dir/docs/a.md", "docs"],
    ),
    (
        "path-docs-md",
        ["docs/**/*.md"],
        ["docs/README.md", "docs/mona/hello-world.md", "docs/a/markdown/file.md"],
        ["docs/README.txt", "README.md", "src/docs/a.md"],
    ),
    (
        "path-any-docs",
        ["**/docs/**"],
        ["docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/space.doc"],
        ["mydocs/a.md", "docs", "dir/docs"],
    ),
    (
        "path-any-readme",
        ["**/README.md"],
        ["README.md", "js/README.md"],
        ["README.md.bak", "js/myREADME.md"],
    ),
    (
        "path-src-suffix-dir",
        ["**/*src/**"],
        ["a/src/app.js", "my-src/code/js/app.js"],
        ["src-x/app.js", "a/source/app.js", "src"],
    ),
    (
        "path-post-suffix",
        ["**/*-post.md"],
        ["my-post.md", "path/their-post.md"],
        ["post.md", "my-post.md.txt"],
    ),
    (
        "path-migrate",
        ["**/migrate-*.sql"],
        ["migrate-10909.sql", "db/migrate-v1.0.sql", "db/sept/migrate-v1.sql"],
        ["db/migrate/1.sql", "migrate-1.sqlx"],
    ),
    (
        "path-negation",
        ["*.md", "!README.md"],
        ["hello.md"],
        ["README.md", "docs/hello.md"],
    ),
    (
        "path-negation-reinclude",
        ["*.md", "!README.md", "README*"],
        ["hello.md", "README.md", "README.doc"],
        ["docs/hello.md"],
    ),
]

# The cheat sheet's bullet-list examples and what its prose implies, one pattern each.
OUR_CASES: list[tuple[str, list[str], list[str], list[str]]] = [
    ("star-prose", ["Octo*"], ["Octocat", "Octo"], ["Octo/cat"]),
    ("bracket-list", ["[CB]at"], ["Cat", "Bat"], ["Hat", "at", "CBat"]),
    ("bracket-range", ["[1-2]00"], ["100", "200"], ["300", "00"]),
    ("bracket-multi-range", ["[0-9a-f]"], ["7", "c"], ["g", "A", "-"]),
    ("plus-literal-char", ["ab+c"], ["abc", "abbbc"], ["ac"]),
    ("question-bracket", ["v[0-9]?"], ["v", "v1"], ["v12"]),
    ("escaped-star", ["a\\*b"], ["a*b"], ["axb", "ab"]),
    ("escaped-bang", ["\\!x"], ["!x"], ["x"]),
    ("escaped-bracket", ["\\[ab]"], ["[ab]"], ["a"]),
    ("bang-not-first", ["a!b"], ["a!b"], ["ab"]),
    ("double-bang", ["!!x"], [], ["!x", "x"]),
    ("dot-literal", ["v1.0"], ["v1.0"], ["v1x0"]),
    ("regex-chars-literal", ["fix(a)|b{2}$"], ["fix(a)|b{2}$"], ["fix(a)"]),
    ("unmatched-close-bracket", ["a]"], ["a]"], ["a"]),
    ("star-takes-newline", ["a*"], ["a\nb"], ["a/b"]),
    ("no-trailing-newline", ["main"], [], ["main\n"]),
    ("unicode", ["docs/*.md"], ["docs/café.md"], ["docs/café/a.md"]),
    ("dirs-then-star", ["a/**/*"], ["a/b", "a/b/c"], ["a", "b/c"]),
    ("dirs-needs-a-dir", ["**/x"], ["x", "d/x", "d/e/x"], ["dx", "/"]),
    ("dirs-only-at-segment-start", ["a**/b"], ["a/b", "ax/y/b"], ["ab"]),
    ("dirs-after-slash", ["a/**/b"], ["a/b", "a/x/y/b"], ["ab", "a/xb"]),
    ("star-star-star", ["***"], ["a/b"], []),
    ("empty-list", [], [], ["main", ""]),
    ("negation-only", ["!main"], [], ["main", "dev"]),
    ("last-match-excludes", ["release/**", "!release/old*"], ["release/1"], ["release/old-1"]),
    ("last-match-includes", ["!release/**", "release/1.*"], ["release/1.2"], ["release/2.0"]),
]


def _flatten(
    table: list[tuple[str, list[str], list[str], list[str]]],
) -> list[pytest.ParameterSet]:
    return [
        pytest.param(patterns, value, expected, id=f"{name}:{value!r}")
        for name, patterns, matches, misses in table
        for value, expected in [(m, True) for m in matches] + [(m, False) for m in misses]
    ]


@pytest.mark.parametrize(("patterns", "value", "expected"), _flatten(CHEAT_SHEET + OUR_CASES))
def test_match_patterns(patterns: list[str], value: str, expected: bool) -> None:
    assert all(pattern_problem(pattern) is None for pattern in patterns)
    assert match_patterns(patterns, value) is expected


SINGLE_POSITIVE = [
    (name, patterns, matches, misses)
    for name, patterns, matches, misses in CHEAT_SHEET + OUR_CASES
    if len(patterns) == 1 and not patterns[0].startswith("!")
]


@pytest.mark.parametrize(("patterns", "value", "expected"), _flatten(SINGLE_POSITIVE))
def test_glob_matches_agrees_on_one_positive_pattern(
    patterns: list[str], value: str, expected: bool
) -> None:
    assert glob_matches(patterns[0], value) is expected


PROBLEM_CASES = [
    ("empty", "", "a pattern cannot be empty"),
    ("bang-alone", "!", '"!" alone negates nothing; put a pattern after it, like "!docs/**"'),
    (
        "unclosed-bracket",
        "v[12",
        '"[" at character 2 is never closed; add "]" or write "\\[" to match a literal "["',
    ),
    (
        "unclosed-bracket-negated",
        "!a[",
        '"[" at character 3 is never closed; add "]" or write "\\[" to match a literal "["',
    ),
    (
        "empty-bracket",
        "a[]",
        '"[]" at character 2 lists no characters; list letters or digits, like [0-9a-f]',
    ),
    (
        "reversed-range",
        "[z-a]",
        '"[z-a]" at character 1: range "z-a" runs backwards; write "a-z"',
    ),
    (
        "mixed-range",
        "[a-9]",
        '"[a-9]" at character 1: range "a-9" must stay within a-z, A-Z or 0-9',
    ),
    (
        "cross-case-range",
        "[A-z]",
        '"[A-z]" at character 1: range "A-z" must stay within a-z, A-Z or 0-9',
    ),
    (
        "dangling-dash",
        "[a-]",
        '"[a-]" at character 1: "-" must sit between two letters or digits, like a-z',
    ),
    (
        "punctuation-in-bracket",
        "[._]",
        '"[._]" at character 1: may list only ASCII letters and digits, not "."',
    ),
    (
        "trailing-backslash",
        "docs\\",
        '"\\" at character 5 ends the pattern and escapes nothing; '
        'write "\\\\" to match a literal "\\"',
    ),
    (
        "leading-question",
        "?a",
        '"?" at character 1 must follow a character or [...] to repeat it; '
        'write "\\?" to match a literal "?"',
    ),
    (
        "leading-plus-negated",
        "!+a",
        '"+" at character 2 must follow a character or [...] to repeat it; '
        'write "\\+" to match a literal "+"',
    ),
    (
        "question-after-star",
        "a*?",
        '"?" at character 3 must follow a character or [...] to repeat it; '
        'write "\\?" to match a literal "?"',
    ),
    (
        "double-quantifier",
        "a+?",
        '"?" at character 3 must follow a character or [...] to repeat it; '
        'write "\\?" to match a literal "?"',
    ),
    (
        "too-long",
        "a" * (MAX_PATTERN_CHARS + 1),
        f"pattern is {MAX_PATTERN_CHARS + 1} characters long; the limit is {MAX_PATTERN_CHARS}",
    ),
]


@pytest.mark.parametrize(
    ("pattern", "message"), [c[1:] for c in PROBLEM_CASES], ids=[c[0] for c in PROBLEM_CASES]
)
def test_pattern_problem(pattern: str, message: str) -> None:
    assert pattern_problem(pattern) == message
    with pytest.raises(ValueError, match="filter pattern") as raised:
        match_patterns([pattern], "anything")
    assert str(raised.value).endswith(message)


@pytest.mark.parametrize(
    "pattern", ["a" * MAX_PATTERN_CHARS, "!main", "\\!", "a\\\\", "[a-zA-Z0-9]+"]
)
def test_valid_patterns_have_no_problem(pattern: str) -> None:
    assert pattern_problem(pattern) is None


def test_glob_matches_refuses_negation_and_invalid_patterns() -> None:
    with pytest.raises(ValueError, match=r"'!main' is negated; negation needs a pattern list"):
        glob_matches("!main", "main")
    with pytest.raises(ValueError, match=r"filter pattern '\[': \"\[\" at character 1"):
        glob_matches("[", "[")


def test_pathological_pattern_does_not_backtrack() -> None:
    pattern = "**a**a**a**a**a**a**b"
    assert glob_matches(pattern, "a" * 5000) is False
    assert glob_matches(pattern, "a" * 5000 + "b") is True
    assert match_patterns(["*a*a*a*a*a*a*a*a*b"], "a" * 5000) is False


BRANCH_CASES = [
    ("no-filter", None, None, "anything/at/all", True),
    ("branches-match", ["main", "releases/**"], None, "releases/v1/rc", True),
    ("branches-miss", ["main"], None, "dev", False),
    ("branches-empty-list", [], None, "main", False),
    ("branches-negated", ["releases/**", "!releases/**-alpha"], None, "releases/2-alpha", False),
    ("ignore-match", None, ["mona/octocat", "releases/**-alpha"], "releases/beta/3-alpha", False),
    ("ignore-miss", None, ["mona/octocat"], "main", True),
    ("ignore-empty-list", None, [], "main", True),
    ("ignore-with-exception", None, ["releases/**", "!releases/keep"], "releases/keep", True),
]


@pytest.mark.parametrize(
    ("branches", "branches_ignore", "branch", "expected"),
    [c[1:] for c in BRANCH_CASES],
    ids=[c[0] for c in BRANCH_CASES],
)
def test_branches_pass(
    branches: list[str] | None, branches_ignore: list[str] | None, branch: str, expected: bool
) -> None:
    assert branches_pass(branches=branches, branches_ignore=branches_ignore, branch=branch) is (
        expected
    )


def test_branches_and_branches_ignore_together_is_refused() -> None:
    with pytest.raises(ValueError, match="either branches or branches-ignore, not both"):
        branches_pass(branches=["main"], branches_ignore=["dev"], branch="main")


SUB = ["sub-project/**", "!sub-project/docs/**"]
PATH_CASES = [
    ("no-filter", None, None, ["a.py"], True),
    ("no-filter-no-changes", None, None, [], True),
    ("paths-one-of-many-matches", ["**.js"], None, ["README.md", "src/app.js"], True),
    ("paths-none-match", ["**.js"], None, ["README.md"], False),
    ("paths-docs-example-run", SUB, None, ["sub-project/src/index.js"], True),
    ("paths-docs-example-skip", SUB, None, ["sub-project/docs/readme.md"], False),
    ("paths-no-changes", ["**"], None, [], False),
    ("paths-unknown-diff", ["docs/**"], None, None, True),
    ("ignore-all-ignored", None, ["docs/**", "**.md"], ["docs/a.txt", "README.md"], False),
    ("ignore-one-not-ignored", None, ["docs/**"], ["docs/a.txt", "src/a.py"], True),
    ("ignore-with-exception", None, ["docs/**", "!docs/api/**"], ["docs/api/x.md"], True),
    ("ignore-no-changes", None, ["docs/**"], [], False),
    ("ignore-unknown-diff", None, ["**"], None, True),
]


@pytest.mark.parametrize(
    ("paths", "paths_ignore", "changed", "expected"),
    [c[1:] for c in PATH_CASES],
    ids=[c[0] for c in PATH_CASES],
)
def test_paths_pass(
    paths: list[str] | None,
    paths_ignore: list[str] | None,
    changed: list[str] | None,
    expected: bool,
) -> None:
    assert paths_pass(paths=paths, paths_ignore=paths_ignore, changed=changed) is expected


def test_paths_and_paths_ignore_together_is_refused() -> None:
    with pytest.raises(ValueError, match="either paths or paths-ignore, not both"):
        paths_pass(paths=["a"], paths_ignore=["b"], changed=["a"])
