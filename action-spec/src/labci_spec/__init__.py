"""labci_spec: the labci workflow format v0.

Models (`Workflow`, `Job`, ...), `load_workflow` (YAML text to a `Workflow`, with
every error located), branch filters and metrics parsing. Pure: no file, network
or process I/O; callers pass text in.
"""

from labci_spec.errors import LabciSpecError, MetricsError, SpecError, SpecErrors
from labci_spec.filters import branch_matches, workflow_matches
from labci_spec.loader import MAX_WORKFLOW_BYTES, load_workflow
from labci_spec.metrics import MAX_METRICS_BYTES, parse_metrics_json
from labci_spec.model import BranchFilter, Job, MetricsSpec, Step, Triggers, Workflow

__all__ = [
    "MAX_METRICS_BYTES",
    "MAX_WORKFLOW_BYTES",
    "BranchFilter",
    "Job",
    "LabciSpecError",
    "MetricsError",
    "MetricsSpec",
    "SpecError",
    "SpecErrors",
    "Step",
    "Triggers",
    "Workflow",
    "branch_matches",
    "load_workflow",
    "parse_metrics_json",
    "workflow_matches",
]
