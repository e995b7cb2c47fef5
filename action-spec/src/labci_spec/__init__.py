"""labci_spec: the labci workflow format.

Models (`Workflow`, `Job`, `Step`, ...), `load_workflow` (YAML text to a `Workflow`, with
every error located), the JSON Schema, event and path filters, matrix expansion into
`JobInstance`s (and the seeds adaptive repeats add), the `${{ }}` expression language,
`if:` conditions, cron schedules and metrics parsing. Pure: no file, network or process I/O; callers pass text in.
"""

from labci_spec.conditions import Progress, github_context, should_run
from labci_spec.cron import CronSchedule, parse_cron
from labci_spec.errors import (
    CronError,
    ExpressionError,
    InputsError,
    LabciSpecError,
    MetricsError,
    SpecError,
    SpecErrors,
)
from labci_spec.expressions import EvalContext, evaluate_condition, find_expressions, render
from labci_spec.filters import EventFacts, branch_matches, needs_changed_files, workflow_matches
from labci_spec.instances import JobInstance, expand_job, extra_seeds
from labci_spec.loader import MAX_WORKFLOW_BYTES, load_workflow
from labci_spec.matrix import MAX_MATRIX_JOBS, expand_matrix
from labci_spec.metrics import (
    MAX_METRICS_BYTES,
    parse_metric_line,
    parse_metrics,
    parse_metrics_json,
)
from labci_spec.model import (
    Artifacts,
    Cache,
    Compare,
    Job,
    MetricsSpec,
    Step,
    Strategy,
    Tolerance,
    Workflow,
    shell_command,
)
from labci_spec.resources import Container, ContainerOptions, Resources, parse_container_options
from labci_spec.schema import workflow_json_schema
from labci_spec.triggers import (
    DispatchInput,
    PullRequestTrigger,
    PushTrigger,
    Triggers,
    WorkflowDispatch,
    resolve_inputs,
)
from labci_spec.untrusted import untrusted_problems

__all__ = [
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
