"""Request and response shapes of the HTTP API, apart from the tables."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, Field

# Pydantic reads a TypedDict's fields only from typing_extensions' on Python < 3.12.
from typing_extensions import TypedDict


class RegisterRequest(BaseModel):
    registration_token: str = Field(max_length=200)
    name: str = Field(max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=64)
    slots: int = Field(1, ge=1, le=256)


ROW_ID = {"ge": 1, "le": 2**31 - 1}  # PostgreSQL `integer`


class RunningJob(BaseModel):
    job_id: int = Field(**ROW_ID)
    attempt: int = Field(**ROW_ID)


class Capabilities(BaseModel):
    """What a runner can take now: jobs on the host, jobs in containers (engine answering),
    and untrusted (a fork's) jobs — only a runner whose every job runs in a container."""

    host: bool = True
    container: bool = False
    untrusted: bool = False


class RunnerResources(BaseModel):
    """The machine's size for jobs: what jobs' `resources.cpus` and `memory` are placed in."""

    cpus: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    memory_bytes: int = Field(gt=0, le=2**62)


class HeartbeatRequest(BaseModel):
    running: list[RunningJob] = Field(default_factory=list, max_length=256)
    slots: int = Field(1, ge=1, le=256)
    labels: list[str] = Field(default_factory=list, max_length=64)
    capabilities: Capabilities | None = None
    # GPU inventory: {"gpus": [{"id", "model", "memory_mib", "uuid", "healthy", "problem"}],
    # "driver_version", "cuda_version", "source", "problems"}
    gpus: dict[str, Any] | None = None
    resources: RunnerResources | None = None
    # The runner is stopping: it renews its running jobs' leases but takes no new job.
    draining: bool = False
    # labci-runner's version (shown on the runners page).
    version: str | None = Field(None, max_length=64)


class AttemptBody(BaseModel):
    attempt: int = Field(**ROW_ID)


class LogLineIn(TypedDict):
    """A log line as the runner sends it. A TypedDict, not a model: a batch of thousands
    validates ~5x faster without a model instance per line, and the route stores dicts."""

    seq: Annotated[int, Field(**{**ROW_ID, "ge": 0})]  # log_lines.seq is an `integer`
    step: NotRequired[Annotated[int, Field(ge=-1, le=10_000)]]
    stream: NotRequired[Annotated[str, Field(max_length=16)]]
    text: str
    ts: Annotated[float, Field(allow_inf_nan=False)]


class LogsRequest(AttemptBody):
    lines: list[LogLineIn] = Field(max_length=5000)


class StepRequest(AttemptBody):
    status: str = Field(max_length=32)
    exit_code: int | None = Field(None, ge=-(2**31), le=2**31 - 1)
    started_at: float | None = Field(None, allow_inf_nan=False)
    finished_at: float | None = Field(None, allow_inf_nan=False)


class CompleteRequest(AttemptBody):
    outcome: str = Field(max_length=32)
    reason: str | None = Field(None, max_length=2000)
    metrics: dict[str, float] | None = None
    metrics_error: str | None = Field(None, max_length=2000)
    # The reproducibility record: image digest, host, GPUs, driver/CUDA, limits, GPU use.
    record: dict[str, Any] | None = None


class ReleaseRequest(AttemptBody):
    """The runner cannot start this attempt (an assigned GPU is not fit): try again."""

    reason: str = Field(max_length=500)


class MetricPoint(BaseModel):
    """One run's value of a metric: the mean of its successful repeats."""

    run_id: int
    commit: str
    time: float = Field(description="when the run finished (or was created), Unix seconds")
    value: float = Field(description="mean of the repeats")
    std: float | None = Field(description="sample standard deviation; null for one repeat")
    n: int = Field(description="repeats (seeds) that reported the metric")


class MetricChangePoint(BaseModel):
    """A lasting change of the metric's level: the commit that caused it is after
    `before_commit` and at or before `commit`."""

    commit: str = Field(description="the first measured commit at the new level")
    run_id: int = Field(description="its run")
    time: float
    before_commit: str = Field(description="the last measured commit at the old level")
    before_run_id: int
    mean_before: float = Field(description="mean over the runs since the previous change")
    mean_after: float = Field(description="mean over the runs up to the next change")
    change: float | None = Field(
        description="(mean_after - mean_before) / |mean_before|; null when mean_before is 0"
    )
    p_value: float = Field(
        description="Student's t-test between the two segments (a threshold, not a calibrated "
        "probability: the split is the best of many)"
    )
    runs_before: int
    runs_after: int


class BisectionRun(BaseModel):
    commit: str
    run_id: int | None = Field(description="the run that measured it; null when none could")
    url: str | None = Field(description="the run's page")
    value: float | None = Field(description="the metric's mean in that run")
    n: int = Field(description="its samples (repeats)")
    level: str = Field(description="old | new (the level it is at) | skipped (not measurable)")
    reason: str | None = Field(description="why it was skipped")


class MetricEffect(BaseModel):
    """The found commit against its parent, compared as a push with its previous commit."""

    delta: float | None = Field(description="its mean minus its parent's")
    delta_pct: float | None
    interval: list[float] | None = Field(description="of the delta, at `interval_level`")
    interval_level: float | None
    p_value: float | None = Field(description="of the test that decided the verdict")
    verdict: str = Field(description="regressed | improved | unchanged | inconclusive | …")
    explanation: str = Field(description="how it was decided, in one line")


class MetricBisection(BaseModel):
    """The search for the commit behind a change point (`change_points`)."""

    id: int
    state: str = Field(
        description="searching | found | exhausted (only unmeasurable commits left) | failed "
        "| budget (paused: the repository's daily budget of bisection runs is used up)"
    )
    note: str | None = Field(description="what went wrong, or why it waits")
    before_commit: str = Field(description="the last measured commit at the old level")
    after_commit: str = Field(description="the first measured commit at the new level")
    level_before: float
    level_after: float
    commits_between: int | None = Field(
        description="unmeasured commits between the two; null until the forge listed them"
    )
    commit: str | None = Field(description="the commit found: the first at the new level")
    parent_commit: str | None = Field(description="the commit before it, at the old level")
    effect: MetricEffect | None
    runs: list[BisectionRun] = Field(
        description="the runs that prove it: at the parent, then at the commit found"
    )
    steps: list[BisectionRun] = Field(description="every commit looked at, in order")
    runs_started: int = Field(description="bisection runs it asked for")


class MetricHistory(BaseModel):
    repository: str
    workflow: str
    job: str
    metric: str
    branch: str
    default_branch: str = Field(description="the repository's, where change points are found")
    points: list[MetricPoint] = Field(description="newest first")
    change_points: list[MetricChangePoint] | None = Field(
        description="newest first, between listed points; null on a branch other than the "
        "repository's default, where none are looked for"
    )
    bisections: list[MetricBisection] | None = Field(
        default=None,
        description="newest first: the searches for the commits behind the default branch's "
        "change points; null on another branch",
    )
    pull_request: int | None = Field(default=None, description="the pull request asked for (?pr=)")
    pull_request_points: list[MetricPoint] | None = Field(
        default=None,
        description="newest first: that pull request's runs, to overlay on the branch's; "
        "null unless ?pr= is given",
    )
