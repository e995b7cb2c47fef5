"""The runner's configuration, read once from the environment in `main()` and passed down.

The variable names are the stable interface of `shared/design.md`; each field names its
variable explicitly (no prefix magic) so that a grep for `LABCI_SERVER_URL` finds it here.
This is the only module that reads `os.environ`.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from labci_spec.fields import parse_size

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
# Credentials the runner holds that experiment code must never see.
SECRET_ENV_NAMES = frozenset(
    {
        "LABCI_RUNNER_TOKEN",
        "LABCI_REGISTRATION_TOKEN",
        "LABCI_REDIS_URL",
        "LABCI_RUNNER_TOKEN_FILE",
        "LABCI_REGISTRATION_TOKEN_FILE",
        "LABCI_REDIS_URL_FILE",
    }
)
# What the runner sets for every job itself: LABCI_RUNNER_JOB_ENV cannot pass these through.
JOB_SET_NAMES = frozenset(
    {"HOME", "TMPDIR", "USER", "LOGNAME", "CI", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Settings that may be read from a file instead: `LABCI_X_FILE=/run/secrets/x` (Docker and
# Kubernetes mount secrets as files).
FILE_SETTINGS = ("LABCI_RUNNER_TOKEN", "LABCI_REGISTRATION_TOKEN", "LABCI_REDIS_URL")


class Settings(BaseSettings):
    """Everything `labci-runner` can be told; build it once in `cli.main()`."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _values_from_files(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        fields = {str(f.validation_alias): name for name, f in cls.model_fields.items()}
        for variable in FILE_SETTINGS:
            path = os.environ.get(f"{variable}_FILE")
            if not path:
                continue
            if variable in data or fields[variable] in data or variable in os.environ:
                raise ValueError(f"{variable} and {variable}_FILE are both set; keep one")
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise ValueError(f"{variable}_FILE: cannot read {path}: {exc.strerror}") from exc
            data = {**data, variable: text.removesuffix("\n").removesuffix("\r")}
        return data

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
        description=(
            "`process`: jobs without `container:` run as host processes, container jobs in "
            "Docker when an engine answers; `docker`: every job in a container."
        ),
    )
    docker_host: str | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_DOCKER_HOST",
        description="Docker engine address, e.g. unix:///run/docker.sock; default DOCKER_HOST.",
    )
    pull_policy: Literal["if-not-present", "always", "never"] = Field(
        default="if-not-present",
        validation_alias="LABCI_RUNNER_PULL_POLICY",
        description="When images are pulled: if-not-present, always or never.",
    )
    default_image: str | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_DEFAULT_IMAGE",
        description="With the docker executor, the image of jobs that name no container.image.",
    )
    container_user: str = Field(
        default_factory=lambda: _default_container_user(),
        validation_alias="LABCI_RUNNER_CONTAINER_USER",
        description="uid:gid steps run as in containers; never root (default: the runner's own, or 1000:1000 for a root runner).",
    )
    job_cpus: float = Field(
        default=2.0,
        gt=0,
        validation_alias="LABCI_RUNNER_JOB_CPUS",
        description="CPUs of a container job whose workflow states no resources.cpus.",
    )
    job_memory_bytes: Annotated[int, BeforeValidator(parse_size)] = Field(
        default=4 * 1024**3,
        gt=0,
        validation_alias="LABCI_RUNNER_JOB_MEMORY",
        description="Memory (e.g. 4G) of a container job whose workflow states no resources.memory.",
    )
    cpus: float = Field(
        default_factory=lambda: float(os.cpu_count() or 1),
        gt=0,
        validation_alias="LABCI_RUNNER_CPUS",
        description="CPUs jobs may use in all; the server places jobs' resources.cpus within it (default: the machine's).",
    )
    memory_bytes: Annotated[int, BeforeValidator(parse_size)] = Field(
        default_factory=lambda: _machine_memory(),
        gt=0,
        validation_alias="LABCI_RUNNER_MEMORY",
        description="Memory (e.g. 64G) jobs may use in all; the server places jobs' resources.memory within it (default: the machine's).",
    )
    pids_limit: int = Field(
        default=4096,
        gt=0,
        validation_alias="LABCI_RUNNER_PIDS_LIMIT",
        description="Processes a container job may have at once (a fork bomb stops there).",
    )
    job_user: str | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_JOB_USER",
        description=(
            "User (name or uid) host steps run as, with its primary group only; the runner"
            " must run as root. Unset: steps run as the runner's own user."
        ),
    )
    job_env: Annotated[list[str], NoDecode] = Field(
        default=[],
        validation_alias="LABCI_RUNNER_JOB_ENV",
        description=(
            "Comma-separated names of the runner's environment variables host steps also"
            " get (HF_HOME, a proxy); never LABCI_* or DOCKER_* names."
        ),
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
    metrics_address: str | None = Field(
        default=None,
        pattern=r"^\S*:\d{1,5}$",
        validation_alias="LABCI_RUNNER_METRICS_ADDRESS",
        description="HOST:PORT where the runner serves Prometheus metrics (GPU utilisation "
        "and memory, last heartbeat), e.g. 127.0.0.1:9102; unset: not served.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="LABCI_LOG_FORMAT",
        description="`json`: one JSON object per log line; `text`: readable lines.",
    )
    poll_delay_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="LABCI_RUNNER_POLL_DELAY_S",
        description="Safety net: longest an idle runner waits between two looks at its "
        "queue. The server wakes it when it queues a job; this only bounds how late a job "
        "starts if a wake-up is lost (or the server is older and sends none).",
    )
    gpus: str | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_GPUS",
        description=(
            "The GPUs this runner offers: `0,1`, or a JSON list of {id, model, memory_mib};"
            " default: what NVML (or nvidia-smi) finds."
        ),
    )
    cache_dir: Path | None = Field(
        default=None,
        validation_alias="LABCI_RUNNER_CACHE_DIR",
        description="Where workflows' `cache:` entries are kept; default <workdir>/cache.",
    )
    cache_max_bytes: Annotated[int, BeforeValidator(parse_size)] = Field(
        default=20 * 1024**3,
        ge=0,
        validation_alias="LABCI_RUNNER_CACHE_MAX_BYTES",
        description="Total size of the cache (e.g. 20G); least recently used entries go first.",
    )
    max_log_bytes: Annotated[int, BeforeValidator(parse_size)] = Field(
        default=64 * 1024**2,
        gt=0,
        validation_alias="LABCI_RUNNER_MAX_LOG_BYTES",
        description="Output kept per job attempt (e.g. 64M); beyond it the log says it was truncated.",
    )
    log_uploads_in_flight: int = Field(
        default=2,
        ge=1,
        le=8,
        validation_alias="LABCI_RUNNER_LOG_UPLOADS_IN_FLIGHT",
        description="Log batches sent at once per job; 1 sends one at a time.",
    )
    drain_grace_s: float = Field(
        default=300.0,
        ge=0,
        validation_alias="LABCI_RUNNER_DRAIN_GRACE_S",
        description=(
            "On SIGTERM/SIGINT the runner takes no new job and lets running ones finish for"
            " this many seconds; then it stops them and hands them back to be run elsewhere."
        ),
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

    @field_validator("job_env", mode="before")
    @classmethod
    def _split_job_env(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("job_env", mode="after")
    @classmethod
    def _no_runner_credentials(cls, names: list[str]) -> list[str]:
        for name in names:
            refused = _refused_job_env(name)
            if refused:
                raise ValueError(f"{name}: {refused}")
        return names

    @field_validator("job_user", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("workdir", mode="after")
    @classmethod
    def _expand_workdir(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("container_user", mode="after")
    @classmethod
    def _not_root(cls, value: str) -> str:
        uid, _, gid = value.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ValueError("expected numeric uid:gid, e.g. 1000:1000")
        if int(uid) == 0:
            raise ValueError("steps never run as root in containers")
        return value

    @property
    def docker_url(self) -> str:
        """LABCI_RUNNER_DOCKER_HOST, else DOCKER_HOST, else the local socket."""
        return self.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL

    @property
    def cache_root(self) -> Path:
        return (self.cache_dir or self.workdir / "cache").expanduser()


def _machine_memory() -> int:
    """The machine's physical memory in bytes (1 GiB where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 1024**3


def _default_container_user() -> str:
    """The runner's own uid:gid, so files steps write stay the runner's; 1000:1000 when the
    runner is root (steps never run as root)."""
    uid, gid = os.getuid(), os.getgid()
    return "1000:1000" if uid == 0 else f"{uid}:{gid}"


def _refused_job_env(name: str) -> str | None:
    """Why `name` may not be passed from the runner to its jobs, or None."""
    if not _ENV_NAME.fullmatch(name):
        return "not an environment variable name"
    if name.upper().startswith("LABCI_"):
        return "LABCI_* names are the runner's credentials and settings; jobs get theirs from the server"
    if name.upper().startswith("DOCKER_"):
        return "DOCKER_* names lead to the runner's Docker engine (root on this machine)"
    if name in JOB_SET_NAMES:
        return "the runner sets it for every job"
    return None


def runner_environment() -> dict[str, str]:
    """The runner's own environment, for its own tools (git): never for steps."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_ENV_NAMES}
