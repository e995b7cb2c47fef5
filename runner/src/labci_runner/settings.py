"""The runner's configuration, read once from the environment in `main()` and passed down.

The variable names are the stable interface of `shared/design.md`; each field names its
variable explicitly (no prefix magic) so that a grep for `LABCI_SERVER_URL` finds it here.
This is the only module that reads `os.environ`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Credentials the runner holds that experiment code must never see.
SECRET_ENV_NAMES = frozenset({"LABCI_RUNNER_TOKEN", "LABCI_REGISTRATION_TOKEN", "LABCI_REDIS_URL"})


class Settings(BaseSettings):
    """Everything `labci-runner` can be told; build it once in `cli.main()`."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    server_url: str | None = Field(
        default=None,
        validation_alias="LABCI_SERVER_URL",
        description="Base URL of the labci server, e.g. https://labci.example.org.",
    )
    runner_token: SecretStr | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_TOKEN",
        description="Runner token; overrides the one stored in runner.json by `register`.",
    )
    registration_token: SecretStr | None = Field(
        default=None,
        validation_alias="LABCI_REGISTRATION_TOKEN",
        description="Single-use token from `labci runners token`; used when not yet registered.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias="LABCI_REDIS_URL",
        description="Redis holding the runner's arq queue.",
    )
    labels: Annotated[list[str], NoDecode] = Field(
        default=["self-hosted", "linux", "cpu"],
        validation_alias="LABCI_RUNNER_LABELS",
        description="Comma-separated labels advertised to the scheduler.",
    )
    executor: Literal["process", "docker"] = Field(
        default="process",
        validation_alias="LABCI_RUNNER_EXECUTOR",
        description="How steps run: `process` (host processes); `docker` is not available yet.",
    )
    workdir: Path = Field(
        default=Path("~/.labci-runner"),
        validation_alias="LABCI_RUNNER_WORKDIR",
        description="Holds runner.json, the git mirrors and the per-job workspaces.",
    )
    name: str = Field(
        default_factory=socket.gethostname,
        validation_alias="LABCI_RUNNER_NAME",
        description="Name shown in the server's runner list; defaults to the hostname.",
    )
    slots: int = Field(
        default=1,
        ge=1,
        validation_alias="LABCI_RUNNER_SLOTS",
        description="How many jobs run at once (arq max_jobs).",
    )
    heartbeat_interval_s: float = Field(
        default=2.0,
        gt=0,
        validation_alias="LABCI_RUNNER_HEARTBEAT_INTERVAL_S",
        description="Seconds between heartbeats; each one renews the running jobs' leases.",
    )
    poll_delay_s: float = Field(
        default=0.02,
        gt=0,
        validation_alias="LABCI_RUNNER_POLL_DELAY_S",
        description="Seconds between arq queue polls; part of the job start latency.",
    )
    kill_grace_s: float = Field(
        default=10.0,
        ge=0,
        validation_alias="LABCI_RUNNER_KILL_GRACE_S",
        description="Seconds between SIGTERM and SIGKILL when a job times out or is cancelled.",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _split_labels(cls, value: object) -> object:
        if isinstance(value, str):
            return [label.strip() for label in value.split(",") if label.strip()]
        return value

    @field_validator("workdir", mode="after")
    @classmethod
    def _expand_workdir(cls, value: Path) -> Path:
        return value.expanduser()


def inherited_job_env() -> dict[str, str]:
    """The runner's own environment as steps and git inherit it: credentials removed."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV_NAMES}
