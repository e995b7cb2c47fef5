"""The workflow format v0 as pydantic models.

These are the validated, serialisable shapes the rest of labci works with:
the server plans `Job`s from a `Workflow` and sends each `Job` to a runner as
JSON (`model_dump(mode="json")` there, `Job.model_validate` on the runner).
`labci_spec.loader` builds them from YAML text with located errors; building
them directly applies the same rules, without line numbers.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JOB_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MIN_TIMEOUT_MINUTES = 1
MAX_TIMEOUT_MINUTES = 3 * 24 * 60
DISPLAY_NAME_CHARS = 60

EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Label = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def metrics_file_problem(file: str) -> str | None:
    """Why `file` cannot name a metrics file under $LABCI_OUTPUT, or None if it can."""
    if not file or file.endswith(("/", "\\")):
        return "must name a file"
    if file.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file):
        return "must be a relative path under $LABCI_OUTPUT"
    if ".." in re.split(r"[/\\]", file):
        return "must not contain '..'"
    return None


class BranchFilter(_Frozen):
    """Which branches an event applies to; None means every branch."""

    branches: list[str] | None = None


class Triggers(_Frozen):
    """The events a workflow reacts to; an event left as None is ignored."""

    push: BranchFilter | None = None
    pull_request: BranchFilter | None = None


class Step(_Frozen):
    """One shell command run in the job's workspace."""

    name: str | None = None
    run: str = Field(min_length=1)
    env: dict[EnvName, str] = Field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """The step's name, or the first line of its command cut to 60 characters."""
        if self.name:
            return self.name
        lines = [line.strip() for line in self.run.splitlines() if line.strip()]
        first = lines[0] if lines else self.run
        if len(first) <= DISPLAY_NAME_CHARS:
            return first
        return first[: DISPLAY_NAME_CHARS - 1] + "…"


class MetricsSpec(_Frozen):
    """Where a job writes its metrics: a relative path under $LABCI_OUTPUT."""

    file: str

    @field_validator("file")
    @classmethod
    def _check_file(cls, value: str) -> str:
        problem = metrics_file_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Job(_Frozen):
    """One unit of work, run on a single runner whose labels include all of `runs_on`."""

    id: str = Field(pattern=JOB_ID_PATTERN)
    name: str | None = None
    runs_on: list[Label] = Field(min_length=1)
    env: dict[EnvName, str] = Field(default_factory=dict)
    timeout_minutes: int = Field(default=60, ge=MIN_TIMEOUT_MINUTES, le=MAX_TIMEOUT_MINUTES)
    steps: list[Step] = Field(min_length=1)
    metrics: MetricsSpec | None = None

    @property
    def timeout_s(self) -> int:
        return self.timeout_minutes * 60


class Workflow(_Frozen):
    """One `.labci/*.yml` file: its triggers and its jobs, keyed by job id."""

    path: str
    name: str
    on: Triggers
    env: dict[EnvName, str] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_job_ids(self) -> Workflow:
        for key, job in self.jobs.items():
            if job.id != key:
                raise ValueError(f"jobs.{key}: id is {job.id!r}, expected {key!r}")
        return self
