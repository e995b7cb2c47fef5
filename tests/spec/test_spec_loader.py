"""load_workflow: valid files, `on` forms, and the exact text of every kind of error."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labci_spec import (
    MAX_WORKFLOW_BYTES,
    BranchFilter,
    Job,
    MetricsSpec,
    SpecError,
    SpecErrors,
    Step,
    Triggers,
    Workflow,
    load_workflow,
)

PATH = ".labci/train.yml"

MINIMAL = """\
on: push
jobs:
  train:
    runs-on: gpu
    steps:
      - run: python train.py
"""

FULL = """\
name: train-small
on:
  push: {branches: [main]}
  pull_request:
env:
  DATASET: mnist
  DEBUG: false
jobs:
  mnist:
    name: MNIST
    runs-on: [gpu, cuda12]
    env: {SEED: 0, LR: 0.0010}
    timeout-minutes: 30
    steps:
      - name: train
        run: python train.py --out "$LABCI_OUTPUT/metrics.json"
        env: {EPOCHS: 3, FAST: yes}
      - run: |
          python eval.py
    metrics:
      file: eval/metrics.json
  lint:
    runs-on: cpu
    steps: [{run: ruff check .}]
"""


def load_errors(text: str | bytes) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_workflow(text, PATH)
    assert str(caught.value) == "\n".join(str(error) for error in caught.value.errors)
    return [str(error) for error in caught.value.errors]


def test_minimal_workflow_gets_defaults() -> None:
    workflow = load_workflow(MINIMAL, PATH)
    assert workflow == Workflow(
        path=PATH,
        name="train",
        on=Triggers(push=BranchFilter()),
        jobs={"train": Job(id="train", runs_on=["gpu"], steps=[Step(run="python train.py")])},
    )
    assert workflow.jobs["train"].timeout_s == 3600


def test_full_workflow_reads_every_key() -> None:
    workflow = load_workflow(FULL.encode(), PATH)
    assert workflow.name == "train-small"
    assert workflow.on == Triggers(
        push=BranchFilter(branches=["main"]), pull_request=BranchFilter(branches=None)
    )
    assert workflow.env == {"DATASET": "mnist", "DEBUG": "false"}
    assert list(workflow.jobs) == ["mnist", "lint"]
    mnist = workflow.jobs["mnist"]
    assert mnist == Job(
        id="mnist",
        name="MNIST",
        runs_on=["gpu", "cuda12"],
        env={"SEED": "0", "LR": "0.0010"},
        timeout_minutes=30,
        steps=[
            Step(
                name="train",
                run='python train.py --out "$LABCI_OUTPUT/metrics.json"',
                env={"EPOCHS": "3", "FAST": "true"},
            ),
            Step(run="python eval.py\n"),
        ],
        metrics=MetricsSpec(file="eval/metrics.json"),
    )
    assert mnist.timeout_s == 1800
    assert workflow.jobs["lint"].steps[0].run == "ruff check ."


def test_utf8_bom_is_tolerated() -> None:
    assert load_workflow(b"\xef\xbb\xbf" + MINIMAL.encode(), PATH).name == "train"


ON_CASES = [
    ("push", Triggers(push=BranchFilter())),
    ("pull_request", Triggers(pull_request=BranchFilter())),
    ("[push, pull_request]", Triggers(push=BranchFilter(), pull_request=BranchFilter())),
    (
        "{push: {branches: [main]}, pull_request: null}",
        Triggers(push=BranchFilter(branches=["main"]), pull_request=BranchFilter()),
    ),
    ("{push: {branches: 'release/**'}}", Triggers(push=BranchFilter(branches=["release/**"]))),
    ("{pull_request: {}}", Triggers(pull_request=BranchFilter())),
]


@pytest.mark.parametrize(
    ("on", "expected"), ON_CASES, ids=["string", "pr-string", "list", "mapping", "str-branch", "{}"]
)
def test_on_forms(on: str, expected: Triggers) -> None:
    text = MINIMAL.replace("on: push", f"on: {on}")
    assert load_workflow(text, PATH).on == expected


def job_with(*lines: str) -> str:
    """A valid file whose job `train` gets extra lines (indented 4)."""
    extra = "".join(f"    {line}\n" for line in lines)
    return f"on: push\njobs:\n  train:\n    runs-on: gpu\n{extra}    steps: [{{run: x}}]\n"


ERROR_CASES = [
    (
        "unknown-key-hint",
        "on: push\njobs:\n  train:\n    runs_on: gpu\n    steps: [{run: x}]\n",
        ["4:5: jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)"],
    ),
    (
        "unknown-key-no-hint",
        job_with("cache: true"),
        [
            "5:5: jobs.train: unknown key 'cache' (expected one of: name, runs-on, env,"
            " timeout-minutes, steps, metrics)"
        ],
    ),
    (
        "unknown-top-level-key",
        MINIMAL + "nmae: x\n",
        ["7:1: unknown key 'nmae' (did you mean 'name'?)"],
    ),
    (
        "timeout-not-int",
        job_with("timeout-minutes: two"),
        ['5:22: jobs.train.timeout-minutes: expected an integer between 1 and 4320, got "two"'],
    ),
    (
        "timeout-too-big",
        job_with("timeout-minutes: 5000"),
        ["5:22: jobs.train.timeout-minutes: expected an integer between 1 and 4320, got 5000"],
    ),
    (
        "timeout-bool",
        job_with("timeout-minutes: true"),
        ["5:22: jobs.train.timeout-minutes: expected an integer between 1 and 4320, got true"],
    ),
    (
        "missing-keys",
        "on: push\njobs:\n  train: {name: x}\n",
        [
            "3:10: jobs.train: missing required key 'runs-on'",
            "3:10: jobs.train: missing required key 'steps'",
        ],
    ),
    (
        "missing-on-and-jobs",
        "name: x\n",
        ["1:1: missing required key 'on'", "1:1: missing required key 'jobs'"],
    ),
    (
        "duplicate-key",
        job_with("env: {A: b}", "env: {C: d}"),
        ["6:5: jobs.train: duplicate key 'env' (first defined on line 5)"],
    ),
    (
        "no-jobs",
        "on: push\njobs: {}\n",
        ["2:7: jobs: expected at least one job, got a mapping"],
    ),
    (
        "bad-job-id",
        "on: push\njobs:\n  1st:\n    runs-on: gpu\n    steps: [{run: x}]\n",
        [
            "3:3: jobs: invalid job id '1st' (use letters, digits, '_' and '-',"
            " starting with a letter or '_')"
        ],
    ),
    (
        "empty-steps",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps: []\n",
        ["5:12: jobs.train.steps: expected a non-empty list of steps, got a list"],
    ),
    (
        "step-without-run",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - name: a\n",
        ["6:9: jobs.train.steps[0]: missing required key 'run'"],
    ),
    (
        "step-run-null",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run:\n",
        ["6:13: jobs.train.steps[0].run: expected a string, got null"],
    ),
    (
        "runs-on-empty-list",
        "on: push\njobs:\n  train:\n    runs-on: []\n    steps: [{run: x}]\n",
        ["4:14: jobs.train.runs-on: expected a string or a non-empty list of strings, got a list"],
    ),
    (
        "runs-on-mapping",
        "on: push\njobs:\n  train:\n    runs-on: {gpu: 1}\n    steps: [{run: x}]\n",
        ["4:14: jobs.train.runs-on: expected a string, got a mapping"],
    ),
    (
        "env-null-and-bad-name",
        job_with("env: {A: null, 'B-C': x, D: [1]}"),
        [
            "5:14: jobs.train.env.A: expected a string, number or boolean, got null",
            "5:20: jobs.train.env: invalid variable name 'B-C' (use letters, digits and '_',"
            " not starting with a digit)",
            "5:33: jobs.train.env.D: expected a string, number or boolean, got a list",
        ],
    ),
    (
        "metrics-absolute",
        job_with("metrics: {file: /tmp/m.json}"),
        [
            "5:21: jobs.train.metrics.file: must be a relative path under $LABCI_OUTPUT,"
            ' got "/tmp/m.json"'
        ],
    ),
    (
        "metrics-dotdot",
        job_with("metrics: {file: out/../../m.json}"),
        ["5:21: jobs.train.metrics.file: must not contain '..', got \"out/../../m.json\""],
    ),
    (
        "unknown-event",
        MINIMAL.replace("on: push", "on: [push, pull-request]"),
        ["1:12: on[1]: unknown event 'pull-request' (did you mean 'pull_request'?)"],
    ),
    (
        "event-twice",
        MINIMAL.replace("on: push", "on: [push, push]"),
        ["1:12: on[1]: event 'push' is listed twice"],
    ),
    (
        "no-events",
        MINIMAL.replace("on: push", "on: []"),
        ["1:5: on: expected at least one of push, pull_request, got a list"],
    ),
    (
        "branches-unknown-key",
        MINIMAL.replace("on: push", "on: {push: {branch: [main]}}"),
        ["1:13: on.push: unknown key 'branch' (did you mean 'branches'?)"],
    ),
    (
        "custom-tag",
        MINIMAL.replace("runs-on: gpu", "runs-on: !gpu big"),
        ["4:14: jobs.train.runs-on: expected a string, got a value tagged !gpu"],
    ),
    (
        "name-bool",
        "name: yes\n" + MINIMAL,
        ["1:7: name: expected a string, got yes"],
    ),
    (
        "nul-escape",
        MINIMAL.replace("python train.py", '"a\\0b"'),
        ["6:14: jobs.train.steps[0].run: must not contain a NUL character"],
    ),
    (
        "many-errors-in-file-order",
        "on: push\njobs:\n  a:\n    runs-on: 1.5\n    steps: [{run: ''}]\n    timeout-minutes: 0\n",
        [
            "5:19: jobs.a.steps[0].run: must not be empty",
            "6:22: jobs.a.timeout-minutes: expected an integer between 1 and 4320, got 0",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_schema_errors(text: str, expected: list[str]) -> None:
    assert load_errors(text) == [f"{PATH}:{error}" for error in expected]


RAW_CASES = [
    (
        "tab",
        "on: push\njobs:\n\ttrain: {}\n",
        "3:1: invalid YAML: while scanning for the next"
        " token, found character '\\t' that cannot start any token",
    ),
    (
        "unclosed-quote",
        "on: push\njobs:\n  a: {name: 'x}\n",
        "4:1: invalid YAML: while scanning"
        " a quoted scalar at line 3, found unexpected end of stream",
    ),
    (
        "two-documents",
        MINIMAL + "---\non: push\n",
        "7:1: invalid YAML: expected a single"
        " document in the stream at line 1, but found another document",
    ),
    (
        "control-char",
        "on: push\x07\n",
        "1:9: invalid YAML: control character U+0007 is not allowed",
    ),
    ("anchor", "on: push\nx: &a [1]\n", "2:4: anchors and aliases are not supported"),
    (
        "alias-bomb",
        'a: &a ["lol","lol"]\nb: [*a,*a,*a,*a]\nc: [*b,*b,*b,*b]\n',
        "1:4: anchors and aliases are not supported",
    ),
    (
        "too-deep",
        "on: " + "[" * 65 + "]" * 65 + "\n",
        "1:68: nesting deeper than 64 levels is not supported",
    ),
    ("list-top-level", "- on: push\n", "1:1: expected a mapping at the top level, got a list"),
    ("scalar-top-level", "push\n", '1:1: expected a mapping at the top level, got "push"'),
    ("empty", "", "1:1: expected a mapping at the top level, got an empty file"),
    ("comment-only", "# nothing\n", "1:1: expected a mapping at the top level, got an empty file"),
    (
        "nul-byte",
        b"on: push\x00\n",
        "1:1: file contains a NUL byte; workflow files must be UTF-8 text",
    ),
    (
        "latin-1",
        "name: caf\xe9\n".encode("latin-1"),
        "1:1: file is not valid UTF-8 (byte 0xe9 at offset 9)",
    ),
    (
        "lone-surrogate",
        "name: \udc80\n",
        "1:1: file contains characters that cannot be encoded as UTF-8",
    ),
    ("too-large", "#" * (MAX_WORKFLOW_BYTES + 1), "1:1: file is larger than 1048576 bytes"),
    (
        "too-large-utf8",
        "é" * (MAX_WORKFLOW_BYTES // 2 + 1),
        "1:1: file is larger than 1048576 bytes",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in RAW_CASES], ids=[case[0] for case in RAW_CASES]
)
def test_unparseable_files(text: str | bytes, expected: str) -> None:
    assert load_errors(text) == [f"{PATH}:{expected}"]


def test_deep_but_allowed_nesting_reaches_the_schema() -> None:
    text = MINIMAL + "extra: " + "[" * 63 + "]" * 63 + "\n"
    assert load_errors(text) == [
        f"{PATH}:7:1: unknown key 'extra' (expected one of: name, on, env, jobs)"
    ]


def load_or_errors(text: str | bytes) -> Workflow | SpecErrors:
    """The workflow, or the SpecErrors raised; any other exception fails the test."""
    try:
        return load_workflow(text, PATH)
    except SpecErrors as exc:
        return exc


def test_spec_error_prints_like_a_compiler() -> None:
    assert str(SpecError(PATH, 12, 5, "boom")) == ".labci/train.yml:12:5: boom"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_gives_workflow_or_spec_errors(text: str | bytes) -> None:
    result = load_or_errors(text)
    assert isinstance(result, Workflow) or result.errors


YAML_PIECES = [
    "on",
    "push",
    "pull_request",
    "jobs",
    "runs-on",
    "steps",
    "run",
    "env",
    "name",
    "timeout-minutes",
    "metrics",
    "file",
    "branches",
    ":",
    ": ",
    "- ",
    "\n",
    "  ",
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
    "null",
    "yes",
    "0x1f",
    "1:30",
    "#",
    "..",
    "/",
    "\t",
    "|",
    ">",
    "?",
    "---",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join))
def test_yaml_like_input_gives_workflow_or_spec_errors(text: str) -> None:
    result = load_or_errors(MINIMAL + text)
    assert isinstance(result, Workflow) or result.errors
