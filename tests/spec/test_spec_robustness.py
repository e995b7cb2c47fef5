"""Loading never crashes and stays bounded (E2, E3): any input ends in a `Workflow` or in
`SpecErrors`, and hostile inputs are refused before they can grow.

Memory is measured with tracemalloc (the planner's RSS bound of E3 is 50 MiB); nothing here
measures time.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_corpus import (
    FULL,
    MINIMAL,
    PATH,
    VALID,
    assert_round_trips,
    editor_view,
    errors_of,
    located,
)

from labci_spec import (
    MAX_WORKFLOW_BYTES,
    SpecErrors,
    expand_job,
    load_workflow,
)

MiB = 1024 * 1024
PLANNER_MEMORY_BOUND = 50 * MiB


def assert_loads_or_is_refused(text: str | bytes) -> None:
    """`text` gives a Workflow that round-trips and expands, or located SpecErrors;
    anything else raised (a crash) fails the test."""
    try:
        workflow = load_workflow(text, PATH)
    except SpecErrors as exc:
        assert_located(exc)
        return
    assert_round_trips(workflow)
    for job_id in workflow.jobs:
        try:
            expand_job(workflow, job_id)
        except SpecErrors as exc:  # a label or image rendered empty: reported, never a crash
            assert_located(exc)


def assert_located(errors: SpecErrors) -> None:
    """Every error is on a real line and column of PATH, and they come in file order."""
    places = [(e.path, e.line, e.column) for e in errors.errors]
    assert places
    assert all(path == PATH and line >= 1 and column >= 1 for path, line, column in places)
    assert places == sorted(places)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    assert_loads_or_is_refused(text)


@FUZZ
@given(st.binary())
def test_arbitrary_bytes(data: bytes) -> None:
    assert_loads_or_is_refused(data)


KEYS = [
    "on",
    "jobs",
    "name",
    "env",
    "defaults",
    "run",
    "runs-on",
    "steps",
    "needs",
    "if",
    "strategy",
    "matrix",
    "include",
    "exclude",
    "metrics",
    "file",
    "compare",
    "goal",
    "tolerance",
    "repeats",
    "container",
    "image",
    "options",
    "resources",
    "gpus",
    "memory",
    "artifacts",
    "paths",
    "cache",
    "key",
    "push",
    "pull_request",
    "workflow_dispatch",
    "schedule",
    "cron",
    "inputs",
    "type",
    "default",
    "branches",
    "types",
    "timeout-minutes",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        ["${{ github.head_ref }}", "${{ matrix.x }}", "16G", "2%", "*/5 * * * *", "a/**"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=40,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_json_like_values_dumped_to_yaml(document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, default_flow_style=None)
    assert_loads_or_is_refused(text)


PIECES = [
    "on",
    "push",
    "jobs",
    "runs-on",
    "steps",
    "run",
    "env",
    "matrix",
    ":",
    ": ",
    "- ",
    "\n",
    "  ",
    "    ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    '"',
    "&a",
    "*a",
    "!!str",
    "!x",
    "<<",
    "null",
    "yes",
    "0x1f",
    "1e999",
    ".inf",
    "#",
    "..",
    "/",
    "\t",
    "|",
    ">-",
    "?",
    "---",
    "...",
    "%YAML 1.1",
    "${{",
    "}}",
    "github.head_ref",
    "\x00",
    "\ufeff",
    "\u2028",
    "é",
]


def mutate(text: str, edits: list[tuple[int, int, int, str]]) -> str:
    """Apply (kind, at, length, piece) edits: 0 deletes, 1 inserts, 2 replaces, 3 repeats a line."""
    for kind, at, length, piece in edits:
        at %= len(text) + 1
        if kind == 0:
            text = text[:at] + text[at + length :]
        elif kind == 1:
            text = text[:at] + piece + text[at:]
        elif kind == 2:
            text = text[:at] + piece + text[at + len(piece) :]
        else:
            lines = text.splitlines(keepends=True) or [""]
            index = at % len(lines)
            text = "".join(lines[: index + 1] + [lines[index]] * length + lines[index + 1 :])
    return text


EDITS = st.lists(
    st.tuples(
        st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 8), st.sampled_from(PIECES)
    ),
    min_size=1,
    max_size=8,
)


@FUZZ
@given(st.sampled_from(sorted(VALID)), EDITS)
def test_mutated_valid_workflows(name: str, edits: list[tuple[int, int, int, str]]) -> None:
    assert_loads_or_is_refused(mutate(VALID[name], edits))


def locations(value: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a plain document, containers before their contents."""
    found = [loc]
    if isinstance(value, dict):
        for key, item in value.items():
            found += locations(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += locations(item, (*loc, index))
    return found


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_valid_workflows_with_one_value_replaced(name: str, data: st.DataObject) -> None:
    document = editor_view(VALID[name])
    loc = data.draw(st.sampled_from(locations(document)[1:]), label="location")
    parent = document
    for part in loc[:-1]:
        parent = parent[part]
    parent[loc[-1]] = data.draw(VALUES, label="new value")
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    assert_loads_or_is_refused(text)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        previous, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def matrix_bomb(axes: int = 5, values: int = 10) -> str:
    rows = [f"        a{i}: [{', '.join(str(v) for v in range(values))}]" for i in range(axes)]
    return (
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    strategy:\n      matrix:\n"
        + "\n".join(rows)
        + "\n    steps: [{run: x}]\n"
    )


def block_nesting(depth: int) -> str:
    return "".join(" " * level + "a:\n" for level in range(depth))


HOSTILE_CASES: list[tuple[str, Callable[[], str | bytes], str]] = [
    (
        "billion-laughs-9-levels",
        billion_laughs,
        "1:4: anchors and aliases are not supported",
    ),
    (
        "matrix-5-axes-of-10",
        matrix_bomb,
        "6:7: jobs.train.strategy.matrix: matrix has 100000 combinations; the limit is 256",
    ),
    (
        "flow-lists-100000-deep",
        lambda: "on: " + "[" * 100_000,
        "1:68: nesting deeper than 64 levels is not supported",
    ),
    (
        "flow-mappings-100000-deep",
        lambda: "{a: " * 100_000,
        "1:254: nesting deeper than 64 levels is not supported",
    ),
    (
        "block-sequences-100000-deep",
        lambda: "- " * 100_000 + "x\n",
        "1:129: nesting deeper than 64 levels is not supported",
    ),
    (
        "block-mappings-1000-deep",
        lambda: block_nesting(1000),
        "64:64: nesting deeper than 64 levels is not supported",
    ),
    (
        "over-1-MiB-is-not-parsed",
        lambda: "x: *a\n" + "#" * MAX_WORKFLOW_BYTES,
        "1:1: file is larger than 1048576 bytes",
    ),
    (
        "over-1-MiB-of-bytes",
        lambda: b"\xff" * (MAX_WORKFLOW_BYTES + 1),
        "1:1: file is larger than 1048576 bytes",
    ),
    (
        "10-MB-file",
        lambda: "a: b\n" * (2 * 1024 * 1024),
        "1:1: file is larger than 1048576 bytes",
    ),
    (
        "50000-anchors",
        lambda: "x: [" + ", ".join(f"&a{i} 1" for i in range(50_000)) + "]\n",
        "1:5: anchors and aliases are not supported",
    ),
]


@pytest.mark.parametrize(
    ("make", "error"), [case[1:] for case in HOSTILE_CASES], ids=[case[0] for case in HOSTILE_CASES]
)
def test_hostile_inputs_are_refused_within_the_memory_bound(
    make: Callable[[], str | bytes], error: str
) -> None:
    text = make()
    tracemalloc.start()
    try:
        with pytest.raises(SpecErrors) as caught:
            load_workflow(text, PATH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [str(e) for e in caught.value.errors] == located(error)
    assert peak < PLANNER_MEMORY_BOUND, f"loading took {peak / MiB:.1f} MiB"


def test_a_file_just_under_the_cap_is_parsed() -> None:
    text = MINIMAL + "#" * (MAX_WORKFLOW_BYTES - len(MINIMAL))
    assert len(text.encode()) == MAX_WORKFLOW_BYTES
    assert load_workflow(text, PATH).jobs["train"].steps[0].run == "python train.py"


def test_a_large_valid_workflow_loads_within_the_memory_bound() -> None:
    text = FULL.replace(
        "env:\n", "env:\n" + "".join(f"  V{i}: value-{i}\n" for i in range(20_000)), 1
    )
    tracemalloc.start()
    try:
        workflow = load_workflow(text, PATH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(workflow.env) == 20_002
    assert peak < PLANNER_MEMORY_BOUND, f"loading took {peak / MiB:.1f} MiB"


def test_utf8_bom_and_crlf_are_fine() -> None:
    text = b"\xef\xbb\xbf" + MINIMAL.replace("\n", "\r\n").encode()
    assert load_workflow(text, PATH).jobs["train"].runs_on == ["gpu"]


def test_hostile_errors_are_short_enough_for_a_status() -> None:
    """A 64 KiB value is never echoed whole into a message."""
    text = MINIMAL.replace("runs-on: gpu", "runs-on: {" + "x" * 65_000 + ": 1}")
    (error,) = errors_of(text)
    assert len(error) < 200
