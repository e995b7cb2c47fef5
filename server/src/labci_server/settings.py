"""Server settings: built once in `main()` or `create_app()` and passed down.

Every name is part of the stable interface in shared/design.md; every field carries a
description, and a test fails when one is missing or the README does not mention it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

# Settings that may be read from a file instead: `LABCI_X_FILE=/run/secrets/x` (Docker and
# Kubernetes mount secrets as files). The credentials, and the URLs that carry passwords.
FILE_SETTINGS = (
    "database_url",
    "redis_url",
    "webhook_secret",
    "github_token",
    "github_private_key",
    "github_oauth_client_secret",
    "session_secret",
    "secret_key",
    "api_token",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABCI_", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _values_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        files = {name: f"LABCI_{name.upper()}" for name in FILE_SETTINGS}
        return {**data, **read_secret_files(files, set_already=set(data))}

    database_url: str = Field(
        "sqlite:///./labci.db",
        description="Database URL; sqlite:///path or postgresql://user@host/db. "
        "The async driver is added automatically.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for the arq queues. Unset under `labci dev`/`labci demo`: "
        "an embedded Redis is started.",
    )
    redis_runner_acl: bool = Field(
        False,
        description="Give each runner at registration its own Redis ACL user, limited to its "
        "queue's keys (deploy/redis/users.acl); LABCI_REDIS_URL's user then needs `ACL "
        "SETUSER`/`DELUSER`. Off: runners use the Redis URL they are given.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Base URL where people reach this server; used in commit status links.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Shared secret for X-Hub-Signature-256; `labci serve` requires it."
    )
    github_api_url: str = Field("https://api.github.com", description="GitHub REST API base URL.")
    github_token: SecretStr | None = Field(
        None, description="Token used to read workflow files and post commit statuses."
    )
    github_app_id: str | None = Field(None, description="GitHub App id (with the private key).")
    github_private_key: SecretStr | None = Field(None, description="GitHub App private key (PEM).")
    host: str = Field("127.0.0.1", description="Address `labci serve` binds to.")
    port: int = Field(8000, description="Port `labci serve` listens on.")
    lease_s: float = Field(
        30.0, description="How long a running job's lease lasts without a runner heartbeat."
    )
    reaper_interval_s: float = Field(
        5.0, description="How often the worker reaps expired leases and reconciles queues."
    )
    max_attempts: int = Field(
        3, description="Attempts per job before a lost runner fails it for good."
    )
    priority_default_branch: int = Field(
        0,
        description="Queue priority of jobs from pushes to a repository's default branch and of "
        "baseline measurements; a higher priority is placed first (pull request checks have 0).",
    )
    priority_manual: int = Field(
        0,
        description="Queue priority of manual runs (`labci run`, workflow_dispatch, re-runs from "
        "the run page keep their run's).",
    )
    queue_timeout_s: float = Field(
        24 * 3600.0,
        gt=0,
        description="Longest a job may wait for a runner; then it errors with the reason it waited.",
    )
    repository_max_jobs: int = Field(
        0,
        ge=0,
        description="Jobs of one repository queued or running at once; 0: no limit. "
        "`labci repos job-limit` sets one repository's.",
    )
    poll_delay_s: float = Field(
        5.0,
        gt=0,
        description="Safety net: longest an idle server worker waits between two looks at "
        "its arq queue. Enqueues wake it at once; this only bounds how late a job is if a "
        "wake-up is lost.",
    )
    outbox_min_backoff_s: float = Field(
        2.0, description="First retry delay for a forge message that failed without a hint."
    )
    outbox_max_backoff_s: float = Field(
        300.0, description="Longest retry delay for a forge message."
    )
    outbox_max_attempts: int = Field(
        12, description="Attempts before a forge message is dead-lettered."
    )
    outbox_min_interval_s: float = Field(
        1.0,
        description="Least time between two writes to GitHub with one credential (one at a time).",
    )
    outbox_rate_limit_wait_s: float = Field(
        60.0,
        description="Least wait after a rate limit that names no time (GitHub asks for a minute).",
    )
    registration_token_ttl_s: float = Field(
        3600.0, description="How long a runner registration token stays valid."
    )
    artifacts_dir: str = Field(
        "./labci-artifacts",
        description="Where uploaded job artifacts are kept (one folder per job and attempt).",
    )
    repository_facts_max_age_s: float = Field(
        3600.0,
        description="How old a GitHub repository's clone URL, visibility and installation, as "
        "read from GitHub's API, may be before planning reads them again.",
    )

    # --- operations (labci_server.operations; see docs/operations.md) ---
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: one readable line per record; `json`: one JSON object per line "
        "(time, level, logger, message, and the exception), for log collectors. The runner "
        "reads it too.",
    )
    worker_metrics_address: str | None = Field(
        None,
        description="HOST:PORT where `labci worker` serves its Prometheus metrics, e.g. "
        "0.0.0.0:9101; unset: not served (the server's own are on /metrics).",
    )

    # --- HTTP limits (labci_server.http; see docs/reverse-proxy.md) ---
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long a client may take to send a request's headers before the "
        "connection is closed (stalled or slow clients hold a descriptor each).",
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Longest pause between two parts of a request body before the request "
        "is answered 408 and the connection closed.",
    )
    keep_alive_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long an idle keep-alive connection stays open between requests.",
    )
    max_connections: int = Field(
        4096,
        ge=16,
        description="Connections served at once; beyond it new ones are closed at once and "
        "requests answered 503 (also capped by the process's open-file limit).",
    )
    write_rate_limit: str = Field(
        "60/minute",
        description="Write requests allowed per API token (or session, or address) in the "
        "`limits` notation, e.g. `60/minute` or `10/second`.",
    )

    # --- people and permissions ---
    session_secret: SecretStr | None = Field(
        None,
        description="Key that signs sign-in session cookies; unset: one is made and kept in "
        "the database on first start.",
    )
    anonymous_read: bool = Field(
        True,
        description="Whether public repositories' runs, logs and badges are readable without "
        "signing in; private ones never are.",
    )
    github_oauth_client_id: str | None = Field(
        None, description="Client id of the GitHub OAuth (or GitHub App) web sign-in flow."
    )
    github_oauth_client_secret: SecretStr | None = Field(
        None, description="Client secret of the GitHub OAuth (or GitHub App) web sign-in flow."
    )
    github_web_url: str = Field(
        "https://github.com",
        description="GitHub's web address, where people authorize the sign-in (GitHub "
        "Enterprise: its own).",
    )
    api_token: SecretStr | None = Field(
        None,
        description="Personal API token the CLI's client commands (`labci cancel`, `labci "
        "dispatch`) send; overrides the one `labci login` stored.",
    )
    credentials_file: str = Field(
        "~/.config/labci/credentials.json",
        description="Where `labci login` keeps a personal API token per server (mode 0600).",
    )
    permission_cache_s: float = Field(
        60.0,
        description="How long a GitHub user's permission on a repository is cached.",
    )
    fork_runner_labels: str = Field(
        "",
        description="Comma-separated runner labels a fork's jobs may ask for in `runs-on` "
        "(empty: any label a docker runner has). Forks never run on process runners.",
    )

    @property
    def fork_labels(self) -> frozenset[str]:
        return frozenset(
            part.strip() for part in self.fork_runner_labels.split(",") if part.strip()
        )

    # --- bisection (labci_server.bisection) ---
    bisect_runs_per_day: int = Field(
        20,
        ge=0,
        description="Bisection runs a repository may start in any 24 hours, to find the commit "
        "behind a change point of its default branch; 0 turns bisection off. "
        "`labci repos bisect-budget` sets one repository's.",
    )

    # --- secrets (labci_server.secrets) ---
    secret_key: SecretStr | None = Field(
        None,
        description="Fernet keys, comma-separated, that encrypt stored secrets: the first "
        "encrypts, all decrypt (rotation). Unset: no secret can be stored (`labci dev`/`demo` "
        "make one in the state directory).",
    )

    @model_validator(mode="after")
    def _app_needs_both(self) -> Settings:
        if bool(self.github_app_id) != bool(self.github_private_key):
            raise ValueError(
                "LABCI_GITHUB_APP_ID and LABCI_GITHUB_PRIVATE_KEY go together: a GitHub App "
                "needs its id and its private key"
            )
        return self

    @model_validator(mode="after")
    def _oauth_needs_both(self) -> Settings:
        if bool(self.github_oauth_client_id) != bool(self.github_oauth_client_secret):
            raise ValueError(
                "LABCI_GITHUB_OAUTH_CLIENT_ID and LABCI_GITHUB_OAUTH_CLIENT_SECRET go together"
            )
        return self


def read_secret_files(files: dict[str, str], *, set_already: set[str]) -> dict[str, str]:
    """The settings whose `<VARIABLE>_FILE` is set, read from those files (`files` maps a
    setting's key to its variable). One trailing newline is dropped (`echo x > file`).
    ConfigError, not ValueError: pydantic would print the other settings' values with it."""
    values = {}
    for key, variable in files.items():
        path = os.environ.get(f"{variable}_FILE")
        if not path:
            continue
        if key in set_already or variable in os.environ:
            raise ConfigError(f"{variable} and {variable}_FILE are both set; keep one")
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from exc
        values[key] = text.removesuffix("\n").removesuffix("\r")
    return values


def inherited_environment() -> dict[str, str]:
    """This process's environment, for the children that `labci dev` starts."""
    return dict(os.environ)


# prometheus_client's own variable (not a labci setting): where each process of
# `labci serve --workers N` writes its figures, for /metrics to sum them.
PROMETHEUS_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def share_process_metrics() -> None:
    """Before prometheus_client is first imported: the server's processes write their
    figures to one directory (a new temporary one, unless the operator set it)."""
    import tempfile

    if not os.environ.get(PROMETHEUS_MULTIPROC_DIR):
        os.environ[PROMETHEUS_MULTIPROC_DIR] = tempfile.mkdtemp(prefix="labci-metrics-")


def process_metrics_shared() -> bool:
    return bool(os.environ.get(PROMETHEUS_MULTIPROC_DIR))
