"""The public API of labci_spec is exactly `__all__`."""

from __future__ import annotations

import labci_spec
from labci_spec import LabciSpecError, MetricsError, SpecErrors


def test_all_is_the_public_api() -> None:
    assert set(labci_spec.__all__) == {
        "BranchFilter",
        "Job",
        "LabciSpecError",
        "MAX_METRICS_BYTES",
        "MAX_WORKFLOW_BYTES",
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
    }
    assert len(labci_spec.__all__) == len(set(labci_spec.__all__))
    assert all(hasattr(labci_spec, name) for name in labci_spec.__all__)


def test_errors_share_one_root() -> None:
    assert issubclass(SpecErrors, LabciSpecError)
    assert issubclass(MetricsError, LabciSpecError)
