"""Every table of labci. SQL is the source of truth; Redis only carries dispatch.

Times are Unix seconds (float) so SQLite and PostgreSQL store and compare them alike.
Uniqueness that matters for exactly-once behaviour is enforced here, by the database:
the webhook delivery id, one run per (event, workflow), one job per (run, job key),
one outbox message per (repository, commit, context, state).
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def now_s() -> float:
    return time.time()


TERMINAL_JOB_STATES = (
    "success",
    "failure",
    "error",
    "cancelled",
    "timed_out",
    "skipped",
    "blocked",
)
# waiting: its `needs` are not finished; pending: ready to be scheduled.
WAITING_JOB_STATES = ("waiting", "pending")


class Repository(SQLModel, table=True):
    __tablename__ = "repositories"
    __table_args__ = (UniqueConstraint("provider", "full_name"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str  # "github" | "git"
    full_name: str  # owner/name; for the git provider, the bare repository's name
    clone_url: str
    private: bool = False
    # The GitHub App installation that covers it (from its webhooks), when labci is an App.
    installation_id: int | None = None
    # Lets a README show this private repository's badges: `?token=` in the badge URL.
    badge_token: str | None = None
    # The local forge's post-receive hook authenticates with its own token (hash kept here).
    hook_token_hash: str | None = None
    # When clone URL, visibility and installation were last read from the forge's API:
    # deliveries never rewrite them.
    facts_checked_at: float | None = None
    # Which fork pull requests wait for a maintainer's approval before anything runs:
    # "all" (the default), "first-time" (first-time contributors only) or "none".
    fork_approval: str = Field(default="all", sa_column_kwargs={"server_default": "all"})
    # The branch the forge calls the default (GitHub's `default_branch`, a local repository's
    # HEAD), with the other facts; None until read. Change points are found on it alone.
    default_branch: str | None = None
    # Bisection runs that may start per day (`labci repos bisect-budget`); None: the
    # server's LABCI_BISECT_RUNS_PER_DAY, 0: no bisection.
    bisect_runs_per_day: int | None = None
    # Jobs of this repository queued or running at once (`labci repos job-limit`); None:
    # the server's LABCI_REPOSITORY_MAX_JOBS, 0 there: no limit.
    max_jobs: int | None = None
    # When the scheduler last placed one of its jobs: the round robin between
    # repositories serves the one served least recently first.
    last_placed_at: float | None = None
    created_at: float = Field(default_factory=now_s)


class Event(SQLModel, table=True):
    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(unique=True, max_length=200)
    provider: str
    kind: str  # "push" | "pull_request" | "workflow_dispatch"
    action: str | None = None
    # A manual run names its workflow file and carries its typed inputs.
    workflow_path: str | None = None
    inputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    commit_sha: str
    branch: str  # pushed branch, or the PR's head branch
    base_branch: str | None = None
    base_sha: str | None = None
    pr_number: int | None = None
    # A pull request whose head lives in another repository: its code is untrusted.
    from_fork: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # GitHub's author_association of the pull request's author (FIRST_TIME_CONTRIBUTOR, …).
    author_association: str | None = None
    # Who sent it (the forge login; the local user for the git forge) and its headline (a
    # pull request's title, a push's head commit subject): what the runs list shows.
    sender: str | None = None
    title: str | None = Field(default=None, sa_column=Column(Text))
    # received | planned | failed | superseded (its head moved on first)
    state: str = Field(default="received", index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    received_at: float = Field(default_factory=now_s)
    planned_at: float | None = None


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("event_id", "workflow_path"),
        # The unfinished members of each `concurrency:` group (planning and scheduling).
        sa.Index(
            "ix_runs_concurrency_group",
            "repository_id",
            "concurrency_group",
            postgresql_where=sa.text("concurrency_group IS NOT NULL AND state != 'finished'"),
            sqlite_where=sa.text("concurrency_group IS NOT NULL AND state != 'finished'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="events.id", index=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    workflow_path: str
    workflow_name: str
    # The workflow file as read at the commit: part of every result's reproducibility record.
    workflow_sha256: str | None = None
    commit_sha: str = Field(index=True)
    trigger: str  # push | pull_request | workflow_dispatch | baseline
    # One run per (repository, commit, workflow, trigger, branch or pull request): a
    # redelivery or a second push of the same head plans nothing new. None: manual runs.
    dedupe_key: str | None = Field(default=None, unique=True, index=True)
    branch: str
    pr_number: int | None = None
    state: str = "pending"  # pending | running | finished
    # False for code from a fork: docker runners only, no secrets, no loosened container.
    trusted: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    # "awaiting": nothing is scheduled until a writer approves its commit; then "approved".
    approval: str | None = None
    approved_by: str | None = None
    # Its workflow-level `concurrency:` group, rendered at planning (None: none).
    concurrency_group: str | None = None
    conclusion: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(default_factory=now_s)
    finished_at: float | None = None


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "job_key"),
        # The scheduler's queue (scheduling/queue_index.py): partial, so finished jobs
        # cost nothing.
        sa.Index(
            "ix_jobs_pending_queue",
            "shape",
            "repository_id",
            "priority",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
        sa.Index(
            "ix_jobs_pending_since",
            "pending_since",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
        sa.Index(
            "ix_jobs_concurrency_group",
            "concurrency_group",
            postgresql_where=sa.text("concurrency_group IS NOT NULL AND finished_at IS NULL"),
            sqlite_where=sa.text("concurrency_group IS NOT NULL AND finished_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    job_key: str  # the instance: "train (0, adam)"
    workflow_job: str = ""  # the job's id in the workflow: "train"
    context: str  # labci/<workflow>/<group>; repeats of one experiment share it
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # a JobInstance
    runs_on: list[str] = Field(sa_column=Column(JSON, nullable=False))
    env: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timeout_s: int
    state: str = Field(default="pending", index=True)
    attempt: int = 1
    runner_id: int | None = Field(default=None, foreign_key="runners.id", index=True)
    # The GPUs of its runner the scheduler gave this attempt (ids as the runner names them).
    gpu_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # What a reader needs to trust or rerun the number: image digest, host, GPUs, limits.
    record: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The current attempt's job token (minted when a runner claims the attempt, cleared
    # when it ends); indexed so that a token sent for another job is told apart (403).
    job_token_hash: str | None = Field(default=None, index=True)
    # The tokens of this job's earlier attempts, superseded by a retry: a runner that comes
    # back with one (paused past its lease) is told 409 "stale", not 401 "unknown" (B2).
    stale_token_hashes: list[str] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    lease_expires_at: float | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    # Set by the scheduler when it first sees the job pending (None: not indexed yet):
    # what it needs from a runner (scheduling/shapes.py), its priority, its repository
    # (for the round robin between repositories) and since when it waits.
    shape: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    repository_id: int | None = None
    pending_since: float | None = None
    max_parallel: int | None = None  # its matrix's `strategy.max-parallel`
    # Its job-level `concurrency:` group (GitHub Actions' semantics), rendered at planning
    # for its matrix combination; the run's own group is on the run.
    concurrency_group: str | None = None
    created_at: float = Field(default_factory=now_s)
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Step(SQLModel, table=True):
    __tablename__ = "steps"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "index"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    attempt: int
    index: int
    name: str
    status: str = "pending"
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


class LogLine(SQLModel, table=True):
    __tablename__ = "log_lines"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    attempt: int
    seq: int
    step: int
    stream: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    ts: float


class Metric(SQLModel, table=True):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    attempt: int
    name: str
    value: float


class Artifact(SQLModel, table=True):
    """A file a job kept (`artifacts:`), stored under LABCI_ARTIFACTS_DIR."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "path"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    attempt: int
    path: str  # relative to the job's $LABCI_OUTPUT
    size_bytes: int
    sha256: str
    created_at: float = Field(default_factory=now_s)


class Runner(SQLModel, table=True):
    __tablename__ = "runners"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    labels: list[str] = Field(sa_column=Column(JSON, nullable=False))
    slots: int = 1
    # What it can take now (heartbeats say): {"host": jobs without container, "container": ...}
    capabilities: dict[str, bool] = Field(
        default_factory=lambda: {"host": True, "container": False},
        sa_column=Column(JSON, nullable=False),
    )
    # The GPU inventory of its last heartbeat: {"gpus": [{"id", "model", "healthy", ...}], ...}
    gpus: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    token_hash: str = Field(unique=True)
    queue_name: str = ""
    # A revoked runner's token answers 401 everywhere.
    revoked_at: float | None = None
    # Removed (`labci runners remove`): revoked, and no longer listed; its rows stay for
    # the jobs it ran.
    removed_at: float | None = None
    # Drained by an administrator: it keeps its jobs and heartbeats, and gets no new job
    # until it is resumed (maintenance, a driver update).
    drained_at: float | None = None
    drained_by: str | None = None
    version: str | None = None  # labci-runner's, as its heartbeats say
    # The machine's size for jobs, as its heartbeats say: {"cpus": 16, "memory_bytes": …};
    # None (an older runner): CPUs and memory are not checked on it.
    resources: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    last_heartbeat_at: float | None = None
    created_at: float = Field(default_factory=now_s)


class RegistrationToken(SQLModel, table=True):
    __tablename__ = "registration_tokens"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    expires_at: float
    used_at: float | None = None


class ContextVerdict(SQLModel, table=True):
    """The judgement of one context of a run: its state, description and metric table."""

    __tablename__ = "verdicts"
    __table_args__ = (UniqueConstraint("run_id", "context"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    commit_sha: str = Field(index=True)
    context: str
    # final | awaiting_baseline (a baseline run at `baseline_sha` was started for it)
    phase: str = "final"
    state: str  # the commit status state
    description: str
    baseline_sha: str | None = None
    # The per-metric comparison and where the baseline came from, for comments and pages.
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: float = Field(default_factory=now_s)
    updated_at: float = Field(default_factory=now_s)


class PullRequestComment(SQLModel, table=True):
    """The labci comment of a pull request of the local `git` forge (GitHub keeps its own)."""

    __tablename__ = "pull_request_comments"
    __table_args__ = (UniqueConstraint("repository_id", "pr_number"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    pr_number: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: float = Field(default_factory=now_s)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (UniqueConstraint("repository_id", "commit_sha", "context", "state"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    kind: str = "status"
    commit_sha: str
    context: str
    state: str
    description: str
    target_url: str | None = None
    # kind "comment": the markdown of the pull request's comment (`commit_sha` is "pr:<n>")
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default="pending", index=True)  # pending | sent | dead | superseded
    attempts: int = 0
    next_attempt_at: float = Field(default_factory=now_s)
    claimed_until: float | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(default_factory=now_s)
    sent_at: float | None = None


class CommitComment(SQLModel, table=True):
    """A labci comment on a commit of the local `git` forge (GitHub keeps its own), found
    again by its marker: a bisection's result on the commit it found."""

    __tablename__ = "commit_comments"
    __table_args__ = (UniqueConstraint("repository_id", "commit_sha", "marker"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    commit_sha: str
    marker: str
    body: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: float = Field(default_factory=now_s)


class CommitStatus(SQLModel, table=True):
    """Statuses of the local `git` forge, which has no server of its own to hold them."""

    __tablename__ = "commit_statuses"
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    commit_sha: str = Field(index=True)
    context: str
    state: str
    description: str
    target_url: str | None = None
    created_at: float = Field(default_factory=now_s)


class User(SQLModel, table=True):
    """A person: a local account (password) or a GitHub account (signed in with OAuth)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("provider", "login"),)
    id: int | None = Field(default=None, primary_key=True)
    provider: str  # "local" | "github"
    login: str
    # GitHub's numeric user id: a renamed account stays the same user.
    forge_user_id: int | None = None
    password_hash: str | None = None  # argon2id; local accounts only
    is_admin: bool = False
    disabled: bool = False
    created_at: float = Field(default_factory=now_s)
    last_seen_at: float | None = None


class ApiToken(SQLModel, table=True):
    """A personal API token (`Authorization: Bearer …`): shown once, stored hashed."""

    __tablename__ = "api_tokens"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str
    token_hash: str = Field(unique=True)
    scope: str  # read | write | admin: the most the token may do, whatever its user may
    created_at: float = Field(default_factory=now_s)
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked_at: float | None = None


class RepositoryGrant(SQLModel, table=True):
    """A permission an administrator gave a user on a repository (local repositories, and
    local accounts on GitHub repositories); GitHub users' permissions come from GitHub."""

    __tablename__ = "repository_grants"
    __table_args__ = (UniqueConstraint("repository_id", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    level: str  # read | write | admin
    created_at: float = Field(default_factory=now_s)


class ServerKey(SQLModel, table=True):
    """Keys the server makes itself when none is configured (the session-signing key)."""

    __tablename__ = "server_keys"
    name: str = Field(primary_key=True)
    value: str
    created_at: float = Field(default_factory=now_s)


class Secret(SQLModel, table=True):
    """A secret of a repository or of the whole server, encrypted with LABCI_SECRET_KEY."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("scope", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    scope: str  # "server", or "repository:<id>"
    repository_id: int | None = Field(default=None, foreign_key="repositories.id", index=True)
    name: str
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float = Field(default_factory=now_s)
    updated_at: float = Field(default_factory=now_s)
    updated_by: str | None = None


class Approval(SQLModel, table=True):
    """A writer approved a fork pull request's code at one commit: its runs may start."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("repository_id", "commit_sha"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    commit_sha: str
    pr_number: int | None = None
    approved_by: str
    via: str  # page | cli | comment
    created_at: float = Field(default_factory=now_s)


class Bisection(SQLModel, table=True):
    """The search for the commit that moved a metric at a change point of the default branch
    (`bisection/`): between `good_sha` (the last measured commit at the old level) and
    `bad_sha` (the first at the new one), on the branch's first-parent line."""

    __tablename__ = "bisections"
    __table_args__ = (
        UniqueConstraint("repository_id", "context", "metric", "good_sha", "bad_sha"),
    )
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id", index=True)
    workflow_path: str
    workflow_name: str
    context: str
    metric: str
    branch: str
    good_sha: str
    good_run_id: int
    bad_sha: str
    bad_run_id: int
    level_before: float
    level_after: float
    # The run-to-run spread within each segment of the change point: [{n, mean, std}, ...].
    noise: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # The commits after `good_sha` up to and including `bad_sha`, oldest first; None until
    # the forge listed them.
    candidates: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Indices into `candidates`: the newest known at the old level (-1: `good_sha`) and the
    # oldest known at the new level.
    low: int = -1
    high: int = -1
    # Each commit looked at: {sha, level: old|new|skipped, run_id, mean, n, reason}.
    steps: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    probing: str | None = None  # the commit being measured now
    # listing | searching | budget | found | exhausted | failed | adjacent
    state: str = Field(default="listing", index=True)
    note: str | None = Field(default=None, sa_column=Column(Text))
    result_sha: str | None = None
    result_run_id: int | None = None
    parent_sha: str | None = None
    parent_run_id: int | None = None
    # The found commit against its parent (`compare.compare_metric`): delta, interval, p.
    effect: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: float = Field(default_factory=now_s)
    updated_at: float = Field(default_factory=now_s)
    finished_at: float | None = None


class Schedule(SQLModel, table=True):
    """One `on.schedule` cron of a workflow, as the default branch's newest commit that
    labci planned says (scheduling/cron_runs.py). Each slot fires once: its event's
    delivery id names the slot."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("repository_id", "workflow_path", "cron"),)
    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repositories.id")
    workflow_path: str
    cron: str
    branch: str  # the default branch
    commit_sha: str  # its head when last seen: what a scheduled run runs
    next_at: float = Field(index=True)  # the next slot (UTC epoch seconds)
    last_fired_at: float | None = None  # the last slot fired
    updated_at: float = Field(default_factory=now_s)
