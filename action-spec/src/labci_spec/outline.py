"""What the cross-field rules read of a workflow, taken from the file piece by piece.

A file whose fields do not all validate has no `Workflow`, yet most of it still means
something: a typo in `runs_on` makes `needs: [nope]` no less wrong, and the author should
hear of both at once. `outline` reads each piece a rule needs on its own, validated with
the models' own types: the job ids, a job's `needs`, its matrix and `metrics.repeats`,
each event's filters, the names of the manual inputs. A piece that does not validate is
left out (None): its schema error already says what is wrong there, and a rule reading
half-valid data would only echo it. For a valid file every piece validates, and the
outline says what the `Workflow` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from labci_spec.model import JobNames, Matrix, MetricsSpec
from labci_spec.triggers import Patterns

T = TypeVar("T")
FILTER_EVENTS = ("push", "pull_request")
FILTER_KEYS = ("branches", "branches-ignore", "paths", "paths-ignore")

_NEEDS: TypeAdapter[list[str]] = TypeAdapter(JobNames)
_MATRIX = TypeAdapter(Matrix)
_METRICS = TypeAdapter(MetricsSpec)
_PATTERNS: TypeAdapter[list[str]] = TypeAdapter(Patterns)


@dataclass(frozen=True)
class JobOutline:
    """One job's pieces; None where the piece does not validate."""

    needs: list[str] | None = None
    # The job's matrix (None when it has none); `matrix_known` is False when `strategy`
    # does not validate far enough to tell.
    matrix: Matrix | None = None
    matrix_known: bool = False
    repeats: str | None = None
    max_repeats: int | None = None


@dataclass(frozen=True)
class WorkflowOutline:
    """Every job id with its pieces, each event's valid filters, the declared inputs."""

    jobs: dict[str, JobOutline] = field(default_factory=dict)
    # Event → filter key (`branches-ignore`) → its patterns, for the filters that validate.
    filters: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # The names `inputs.<name>` may use; None when `on` does not say.
    inputs: list[str] | None = None


def outline(value: Any) -> WorkflowOutline:
    """The outline of a file's values (`Data.value`, a mapping)."""
    events = _events(value.get("on")) if isinstance(value, dict) else None
    jobs = value.get("jobs") if isinstance(value, dict) else None
    return WorkflowOutline(
        jobs={key: _job(job) for key, job in jobs.items()} if isinstance(jobs, dict) else {},
        filters={
            event: _filters(events[event])
            for event in FILTER_EVENTS
            if events is not None and isinstance(events.get(event), dict)
        },
        inputs=_inputs(events),
    )


def _valid(adapter: TypeAdapter[T], value: Any) -> T | None:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


def _events(on: Any) -> dict[str, Any] | None:
    """`on:` in its mapping spelling: `on: push` and `on: [push]` are `{push: None}`."""
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list) and all(
        isinstance(e, str | int) and not isinstance(e, bool) for e in on
    ):
        return dict.fromkeys(str(e) for e in on)
    return on if isinstance(on, dict) else None


def _filters(trigger: dict[str, Any]) -> dict[str, list[str]]:
    found = {key: _valid(_PATTERNS, trigger[key]) for key in FILTER_KEYS if key in trigger}
    return {key: patterns for key, patterns in found.items() if patterns is not None}


def _inputs(events: dict[str, Any] | None) -> list[str] | None:
    if events is None:
        return None
    dispatch = events.get("workflow_dispatch")
    if dispatch is None or (isinstance(dispatch, dict) and "inputs" not in dispatch):
        return []  # no manual runs, or manual runs without inputs
    inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    return list(inputs) if isinstance(inputs, dict) else None


def _job(job: Any) -> JobOutline:
    if not isinstance(job, dict):
        return JobOutline()
    matrix, matrix_known = _matrix(job.get("strategy"))
    metrics = job.get("metrics")
    spec = None
    if isinstance(metrics, dict) and "repeats" in metrics:
        spec = _valid(_METRICS, {"repeats": metrics["repeats"]})
    return JobOutline(
        needs=_valid(_NEEDS, job["needs"]) if "needs" in job else [],
        matrix=matrix,
        matrix_known=matrix_known,
        repeats=spec.repeats if spec else None,
        max_repeats=spec.max_repeats if spec else None,
    )


def _matrix(strategy: Any) -> tuple[Matrix | None, bool]:
    if strategy is None:
        return None, True
    if not isinstance(strategy, dict) or "matrix" not in strategy:
        return None, False
    matrix = _valid(_MATRIX, strategy["matrix"])
    return matrix, matrix is not None
