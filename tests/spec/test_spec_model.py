"""The models: derived properties, validation without the loader, and the JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from spec_corpus import VALID, assert_round_trips, load

from labci_spec import Job, MetricsSpec, Step, Tolerance, Workflow, shell_command

WORKFLOW = """\
on: {push: {branches: [main, 'release/**']}}
jobs:
  train:
    runs-on: [gpu]
    env: {SEED: 1}
    steps: [{name: fit, run: python fit.py, env: {A: b}}]
    metrics: {file: metrics.json}
"""


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Step(name="fit", run="python fit.py"), "fit"),
        (Step(run="python fit.py --seed 1\npython eval.py"), "python fit.py --seed 1"),
        (Step(run="\n  \n  echo hi  \n"), "echo hi"),
        (Step(run="x" * 60), "x" * 60),
        (Step(run="y" * 61), "y" * 59 + "…"),
    ],
    ids=["name", "first-line", "skips-blank-lines", "60-chars-kept", "61-chars-cut"],
)
def test_step_display_name(step: Step, expected: str) -> None:
    assert step.display_name == expected
    assert len(step.display_name) <= 60


def test_job_dumps_with_yaml_keys_and_round_trips() -> None:
    workflow = load(WORKFLOW)
    job = workflow.jobs["train"]
    dumped = job.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert dumped == {
        "id": "train",
        "runs-on": ["gpu"],
        "env": {"SEED": "1"},
        "steps": [{"name": "fit", "run": "python fit.py", "env": {"A": "b"}}],
        "metrics": {"file": ["metrics.json"]},
    }
    assert Job.model_validate(dumped) == job
    assert Job.model_validate(job.model_dump(mode="json", by_alias=True)) == job


def test_events_not_listened_to_stay_off_after_a_round_trip() -> None:
    """`pull_request: null` in a dump would read back as "every pull request"."""
    workflow = load(WORKFLOW)
    dumped = workflow.model_dump(mode="json", by_alias=True)
    assert dumped["on"] == {
        "push": {
            "branches": ["main", "release/**"],
            "branches-ignore": None,
            "paths": None,
            "paths-ignore": None,
        }
    }
    again = Workflow.model_validate(json.loads(json.dumps(dumped)))
    assert (again.on.pull_request, again.on.workflow_dispatch, again.on.schedule) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("name", list(VALID), ids=list(VALID))
def test_every_valid_workflow_round_trips_through_json(name: str) -> None:
    assert_round_trips(load(VALID[name]))


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("/abs/m.json", "must be a relative path under $LABCI_OUTPUT"),
        ("C:m.json", "must be a relative path under $LABCI_OUTPUT"),
        ("~/m.json", "must be a relative path under $LABCI_OUTPUT"),
        ("a/../../m.json", "must not contain '..'"),
        ("a\\..\\m.json", "must not contain '..'"),
        ("", "must name a file"),
        ("out/", "must name a file"),
        (
            "metrics.txt",
            "must end in .json, .yaml, .yml, .csv (the format is read from the suffix)",
        ),
    ],
    ids=["absolute", "drive", "home", "dotdot", "backslash-dotdot", "empty", "directory", "suffix"],
)
def test_metrics_file_is_validated_by_the_model(file: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsSpec.model_validate({"file": file})
    assert [error["msg"] for error in caught.value.errors()] == [f"Value error, {message}"]


def test_metrics_file_may_contain_double_dots_in_a_name() -> None:
    assert MetricsSpec.model_validate({"file": "run..1/metrics.json"}).paths == [
        "run..1/metrics.json"
    ]


VALID_JOB = {"id": "a", "runs-on": ["gpu"], "steps": [{"run": "x"}]}
INVALID_JOBS: list[tuple[str, dict[str, Any], tuple[str | int, ...], str]] = [
    ("id", {"id": "1bad"}, ("id",), "string_pattern_mismatch"),
    ("no-labels", {"runs-on": []}, ("runs-on",), "too_short"),
    ("no-steps", {"steps": []}, ("steps",), "too_short"),
    ("timeout-0", {"timeout-minutes": 0}, ("timeout-minutes",), "greater_than_equal"),
    ("timeout-4321", {"timeout-minutes": 4321}, ("timeout-minutes",), "less_than_equal"),
    ("timeout-text", {"timeout-minutes": "30"}, ("timeout-minutes",), "int_type"),
    ("coe-text", {"continue-on-error": "yes"}, ("continue-on-error",), "bool_type"),
    ("env-name", {"env": {"A=B": "c"}}, ("env", "A=B", "[key]"), "string_pattern_mismatch"),
    ("python-name", {"timeout_minutes": 5}, ("timeout_minutes",), "extra_forbidden"),
    ("gpus-bool", {"resources": {"gpus": True}}, ("resources", "gpus"), "int_type"),
    ("cpus-bool", {"resources": {"cpus": True}}, ("resources", "cpus"), "float_type"),
]


@pytest.mark.parametrize(
    ("fields", "loc", "kind"),
    [case[1:] for case in INVALID_JOBS],
    ids=[case[0] for case in INVALID_JOBS],
)
def test_job_rejects_invalid_fields(
    fields: dict[str, Any], loc: tuple[str | int, ...], kind: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Job.model_validate({**VALID_JOB, **fields})
    assert [(error["loc"], error["type"]) for error in caught.value.errors()] == [(loc, kind)]


SHELL_CASES = [
    ("default-bash", None, ["bash", "--noprofile", "--norc", "-eo", "pipefail", "/w/s.sh"]),
    ("bash", "bash", ["bash", "--noprofile", "--norc", "-eo", "pipefail", "/w/s.sh"]),
    ("sh", "sh", ["sh", "-e", "/w/s.sh"]),
    ("python", "python", ["python", "/w/s.sh"]),
    ("template", "python3 -u {0}", ["python3", "-u", "/w/s.sh"]),
    ("template-quoted", "'my shell' --x={0}", ["my shell", "--x=/w/s.sh"]),
]


@pytest.mark.parametrize(
    ("shell", "argv"), [case[1:] for case in SHELL_CASES], ids=[case[0] for case in SHELL_CASES]
)
def test_shell_command(shell: str | None, argv: list[str]) -> None:
    assert shell_command(shell, "/w/s.sh") == argv


TOLERANCE_CASES: list[tuple[str, Any, float, bool, Any, float]] = [
    # id, as written, amount, relative, as dumped, allowed change from a baseline of 0.8
    ("absolute-float", 0.005, 0.005, False, 0.005, 0.005),
    ("absolute-text", "0.005", 0.005, False, 0.005, 0.005),
    ("absolute-int", 1, 1.0, False, 1.0, 1.0),
    ("zero", 0, 0.0, False, 0.0, 0.0),
    ("percent", "2%", 2.0, True, "2%", 0.016),
    ("percent-spaced", " 1.5 % ", 1.5, True, "1.5%", 0.012),
    ("percent-fraction", "0.25%", 0.25, True, "0.25%", 0.002),
]


@pytest.mark.parametrize(
    ("written", "amount", "relative", "dumped", "allowed"),
    [case[1:] for case in TOLERANCE_CASES],
    ids=[case[0] for case in TOLERANCE_CASES],
)
def test_tolerance_round_trips(
    written: Any, amount: float, relative: bool, dumped: Any, allowed: float
) -> None:
    tolerance = Tolerance.model_validate(written)
    assert (tolerance.amount, tolerance.relative) == (amount, relative)
    assert tolerance.model_dump(mode="json") == dumped
    assert Tolerance.model_validate(tolerance.model_dump(mode="json")) == tolerance
    assert tolerance.allowed(0.8) == pytest.approx(allowed)
    assert tolerance.allowed(-0.8) == pytest.approx(allowed)
