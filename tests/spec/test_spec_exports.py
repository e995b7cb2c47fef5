"""The public API of labci_spec is exactly `__all__`, and every part of it is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

import labci_spec
from labci_spec import (
    CronError,
    ExpressionError,
    InputsError,
    LabciSpecError,
    MetricsError,
    SpecErrors,
)

EXPECTED = [
    "MAX_MATRIX_JOBS",
    "MAX_METRICS_BYTES",
    "MAX_WORKFLOW_BYTES",
    "Artifacts",
    "Cache",
    "Compare",
    "Container",
    "ContainerOptions",
    "CronError",
    "CronSchedule",
    "DispatchInput",
    "EvalContext",
    "EventFacts",
    "ExpressionError",
    "InputsError",
    "Job",
    "JobInstance",
    "LabciSpecError",
    "MetricsError",
    "MetricsSpec",
    "Progress",
    "PullRequestTrigger",
    "PushTrigger",
    "Resources",
    "SpecError",
    "SpecErrors",
    "Step",
    "Strategy",
    "Tolerance",
    "Triggers",
    "Workflow",
    "WorkflowDispatch",
    "branch_matches",
    "evaluate_condition",
    "expand_job",
    "expand_matrix",
    "extra_seeds",
    "find_expressions",
    "github_context",
    "load_workflow",
    "needs_changed_files",
    "parse_container_options",
    "parse_cron",
    "parse_metric_line",
    "parse_metrics",
    "parse_metrics_json",
    "render",
    "resolve_inputs",
    "shell_command",
    "should_run",
    "workflow_json_schema",
    "untrusted_problems",
    "workflow_matches",
]


def test_all_is_the_public_api() -> None:
    assert labci_spec.__all__ == EXPECTED
    public = {name for name in vars(labci_spec) if not name.startswith("_")}
    submodules = {name for name in public if inspect.ismodule(getattr(labci_spec, name))}
    assert public - submodules == set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED, ids=EXPECTED)
def test_every_public_name_imports_and_is_documented(name: str) -> None:
    value = getattr(importlib.import_module("labci_spec"), name)  # what `from ... import` does
    if inspect.isclass(value) or inspect.isfunction(value):
        own = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
        assert (own or "").strip(), f"{name} has no docstring"
    else:
        assert (name[:4], type(value)) == ("MAX_", int)
        assert value > 0


@pytest.mark.parametrize(
    "error",
    [SpecErrors, MetricsError, ExpressionError, CronError, InputsError],
    ids=lambda error: error.__name__,
)
def test_errors_share_one_root(error: type[Exception]) -> None:
    assert issubclass(error, LabciSpecError)
