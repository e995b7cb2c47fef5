"""GitHub Actions filter patterns for `branches`, `tags` and `paths`, as GitHub documents them.

The syntax is the "Filter pattern cheat sheet" of GitHub's "Workflow syntax for
GitHub Actions", matched against the whole branch name or file path:

- `*` any run of characters except `/`; `**` any run of characters at all, and
  `**/` starting a path segment any run of whole directories, including none (so
  `**/README.md` matches `README.md`, as the cheat sheet's own example requires);
- `?` zero or one, and `+` one or more, of the preceding character or `[...]`;
- `[...]` one ASCII letter or digit, listed or in a range within a-z, A-Z or 0-9;
- `\\` makes the next character literal; `!` negates, only as the first character
  of a pattern in a list (`match_patterns`), and is literal anywhere else.

Why not `re`: the natural translation (`**` to `.*`) backtracks in time that grows
as len(value) to the power of the number of wildcards, and patterns come from
workflow files anyone who can open a pull request can write.
A pattern compiles instead to a list of steps that `_accepts` runs as an NFA, one
set of live states per character: time is O(len(pattern) * len(value)) always.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

MAX_PATTERN_CHARS = 1024
_ALNUM = frozenset(string.ascii_letters + string.digits)
_RANGES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


@dataclass(frozen=True)
class _Step:
    """One position of a compiled pattern: which characters it takes and how many.

    `chars` None means any character, minus `/` when `slash` is False. `dirs` is
    the `**/` step: any run that, if not empty, ends with `/`.
    """

    chars: frozenset[str] | None
    slash: bool = True
    optional: bool = False
    repeat: bool = False
    dirs: bool = False

    def takes(self, char: str) -> bool:
        if self.chars is not None:
            return char in self.chars
        return self.slash or char != "/"


_STAR = _Step(None, slash=False, optional=True, repeat=True)
_GLOBSTAR = _Step(None, optional=True, repeat=True)
_DIRS = _Step(None, optional=True, repeat=True, dirs=True)


class _Problem(Exception):
    """Internal: why a pattern does not compile; surfaces as pattern_problem()'s text."""


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` (possibly `!`-negated) is not a valid filter pattern, or None.

    The loader turns the text into a located error, so it names the character
    (1-based) and says how to fix it.
    """
    if not pattern:
        return "a pattern cannot be empty"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}"
    if pattern == "!":
        return '"!" alone negates nothing; put a pattern after it, like "!docs/**"'
    body, first = (pattern[1:], 2) if pattern.startswith("!") else (pattern, 1)
    try:
        _compile(body, first)
    except _Problem as exc:
        return str(exc)
    return None


def glob_matches(pattern: str, value: str) -> bool:
    """Whether one positive `pattern` matches the whole of `value`.

    Raises ValueError for an invalid pattern, and for a `!`-negated one: negation
    only means something in a list (`match_patterns`); write `\\!` for a literal `!`.
    """
    steps, negated = _checked(pattern)
    if negated:
        raise ValueError(
            f"filter pattern {pattern!r} is negated; negation needs a pattern list "
            '(match_patterns), and "\\!" matches a literal "!"'
        )
    return _accepts(steps, value)


def match_patterns(patterns: Sequence[str], value: str) -> bool:
    """Whether `value` passes an ordered pattern list: the last pattern that matches decides.

    A `!` pattern that matches excludes, a later positive one re-includes; with no
    positive match at all the answer is False. Raises ValueError for an invalid pattern.
    """
    passed = False
    for pattern in patterns:
        steps, negated = _checked(pattern)
        if _accepts(steps, value):
            passed = not negated
    return passed


def branches_pass(
    *, branches: Sequence[str] | None, branches_ignore: Sequence[str] | None, branch: str
) -> bool:
    """Whether `branch` (or tag) passes an event's `branches` / `branches-ignore` filter.

    No filter passes everything. `branches-ignore` is evaluated like `branches`,
    last match deciding, so `["release/**", "!release/keep"]` ignores every release
    branch but one (a list without `!` is simply "ignored if any pattern matches").
    Both at once is a ValueError: GitHub refuses that combination and so does the loader.
    """
    if branches is not None and branches_ignore is not None:
        raise ValueError("use either branches or branches-ignore, not both")
    if branches is not None:
        return match_patterns(branches, branch)
    if branches_ignore is not None:
        return not match_patterns(branches_ignore, branch)
    return True


def paths_pass(
    *,
    paths: Sequence[str] | None,
    paths_ignore: Sequence[str] | None,
    changed: Sequence[str] | None,
) -> bool:
    """Whether a change to the files `changed` passes a `paths` / `paths-ignore` filter.

    As GitHub documents it ("Git diff comparisons"): `paths` passes if at least one
    changed file passes the list; `paths-ignore` passes unless every changed file is
    ignored (last match deciding, as in `branches_pass`). With neither filter, any
    change passes. Edge cases, also GitHub's: `changed=None` means the diff is unknown
    (GitHub names over 1,000 commits and a diff that timed out) and GitHub then always
    runs, so True; `changed=[]` is "no files changed", where GitHub says the workflow
    will not run, so False for `paths` and for `paths-ignore` alike.
    Both filters at once is a ValueError, as for branches.
    """
    if paths is not None and paths_ignore is not None:
        raise ValueError("use either paths or paths-ignore, not both")
    if changed is None:
        return True
    if paths is not None:
        return any(match_patterns(paths, path) for path in changed)
    if paths_ignore is not None:
        return not all(match_patterns(paths_ignore, path) for path in changed)
    return True


def _checked(pattern: str) -> tuple[tuple[_Step, ...], bool]:
    """The compiled steps of `pattern` without its `!`, and whether it had one."""
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(f"filter pattern {pattern!r}: {problem}")
    if pattern.startswith("!"):
        return _compile(pattern[1:], 2), True
    return _compile(pattern, 1), False


@lru_cache(maxsize=1024)
def _compile(pattern: str, first: int) -> tuple[_Step, ...]:
    """The steps of a positive pattern; `first` is its 1-based column in the original."""
    steps: list[_Step] = []
    index = 0
    while index < len(pattern):
        char, column = pattern[index], first + index
        if pattern.startswith("**/", index) and (index == 0 or pattern[index - 1] == "/"):
            steps.append(_DIRS)
            index += 3
        elif pattern.startswith("**", index):
            steps.append(_GLOBSTAR)
            index += 2
        elif char == "*":
            steps.append(_STAR)
            index += 1
        elif char in "?+":
            if not steps or steps[-1].chars is None or steps[-1].optional or steps[-1].repeat:
                raise _Problem(
                    f'"{char}" at character {column} must follow a character or [...] to '
                    f'repeat it; write "\\{char}" to match a literal "{char}"'
                )
            steps[-1] = replace(steps[-1], optional=char == "?", repeat=char == "+")
            index += 1
        elif char == "[":
            close = pattern.find("]", index + 1)
            if close == -1:
                raise _Problem(
                    f'"[" at character {column} is never closed; add "]" or write "\\[" '
                    'to match a literal "["'
                )
            steps.append(_Step(_bracket(pattern[index + 1 : close], column)))
            index = close + 1
        elif char == "\\":
            if index + 1 == len(pattern):
                raise _Problem(
                    f'"\\" at character {column} ends the pattern and escapes nothing; '
                    'write "\\\\" to match a literal "\\"'
                )
            steps.append(_Step(frozenset(pattern[index + 1])))
            index += 2
        else:
            steps.append(_Step(frozenset(char)))
            index += 1
    return tuple(steps)


def _bracket(inside: str, column: int) -> frozenset[str]:
    """The characters `[inside]` stands for; `column` is where its `[` sits."""
    where = f'"[{inside}]" at character {column}'
    if not inside:
        raise _Problem(f"{where} lists no characters; list letters or digits, like [0-9a-f]")
    chars: set[str] = set()
    index = 0
    while index < len(inside):
        low = inside[index]
        if index + 2 < len(inside) and inside[index + 1] == "-":
            high = inside[index + 2]
            span = next((r for r in _RANGES if low in r and high in r), None)
            if span is None:
                raise _Problem(f'{where}: range "{low}-{high}" must stay within a-z, A-Z or 0-9')
            if low > high:
                raise _Problem(
                    f'{where}: range "{low}-{high}" runs backwards; write "{high}-{low}"'
                )
            chars.update(span[span.index(low) : span.index(high) + 1])
            index += 3
            continue
        if low == "-":
            raise _Problem(f'{where}: "-" must sit between two letters or digits, like a-z')
        if low not in _ALNUM:
            raise _Problem(f'{where}: may list only ASCII letters and digits, not "{low}"')
        chars.add(low)
        index += 1
    return frozenset(chars)


def _accepts(steps: tuple[_Step, ...], value: str) -> bool:
    """Run the steps as an NFA over `value`; a state is (step index, phase).

    Phase 0: the step has taken nothing yet. Phase 1: it has taken a character
    and, being a repeat, may take more. Phase 2 (`**/` only): its last character
    was `/`, the one place that step may end after taking something.
    """
    live = _closure(steps, [(0, 0)])
    for char in value:
        taken: list[tuple[int, int]] = []
        for index, phase in live:
            if index == len(steps) or not steps[index].takes(char):
                continue
            step = steps[index]
            if not step.repeat:
                taken.append((index + 1, 0))
            elif step.dirs:
                taken.append((index, 2 if char == "/" and phase != 0 else 1))
            else:
                taken.append((index, 1))
        if not taken:
            return False
        live = _closure(steps, taken)
    return (len(steps), 0) in live


def _closure(steps: tuple[_Step, ...], states: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """`states` plus every state reachable from them without taking a character."""
    seen = set(states)
    todo = list(seen)
    while todo:
        index, phase = todo.pop()
        if index == len(steps):
            continue
        step = steps[index]
        done = (
            (phase == 0 and step.optional)
            or (phase == 1 and step.repeat and not step.dirs)
            or phase == 2
        )
        if done and (index + 1, 0) not in seen:
            seen.add((index + 1, 0))
            todo.append((index + 1, 0))
    return seen
