"""The models: derived properties, validation without the loader, JSON round trip."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labci_spec import Job, MetricsSpec, Step, load_workflow

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


def test_job_round_trips_through_json() -> None:
    workflow = load_workflow(WORKFLOW, ".labci/a.yml")
    job = workflow.jobs["train"]
    assert Job.model_validate(job.model_dump(mode="json")) == job
    assert type(workflow).model_validate(workflow.model_dump(mode="json")) == workflow
    assert job.model_dump(mode="json") == {
        "id": "train",
        "name": None,
        "runs_on": ["gpu"],
        "env": {"SEED": "1"},
        "timeout_minutes": 60,
        "steps": [{"name": "fit", "run": "python fit.py", "env": {"A": "b"}}],
        "metrics": {"file": "metrics.json"},
    }


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("/abs/m.json", "must be a relative path under $LABCI_OUTPUT"),
        ("C:m.json", "must be a relative path under $LABCI_OUTPUT"),
        ("a/../../m.json", "must not contain '..'"),
        ("a\\..\\m.json", "must not contain '..'"),
        ("", "must name a file"),
        ("out/", "must name a file"),
    ],
    ids=["absolute", "drive", "dotdot", "backslash-dotdot", "empty", "directory"],
)
def test_metrics_file_is_validated_by_the_model(file: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("$", r"\$")):
        MetricsSpec(file=file)


def test_metrics_file_may_contain_double_dots_in_a_name() -> None:
    assert MetricsSpec(file="run..1/metrics.json").file == "run..1/metrics.json"


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "1bad", "runs_on": ["gpu"], "steps": [{"run": "x"}]},
        {"id": "a", "runs_on": [], "steps": [{"run": "x"}]},
        {"id": "a", "runs_on": ["gpu"], "steps": []},
        {"id": "a", "runs_on": ["gpu"], "steps": [{"run": "x"}], "timeout_minutes": 0},
        {"id": "a", "runs_on": ["gpu"], "steps": [{"run": "x"}], "timeout_minutes": 4321},
        {"id": "a", "runs_on": ["gpu"], "steps": [{"run": "x"}], "env": {"A=B": "c"}},
        {"id": "a", "runs_on": ["gpu"], "steps": [{"run": "x"}], "runs-on": ["cpu"]},
    ],
    ids=["id", "no-labels", "no-steps", "timeout-0", "timeout-4321", "env-name", "extra-key"],
)
def test_job_rejects_invalid_fields(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Job.model_validate(fields)
