"""Request and response shapes of the HTTP API, apart from the tables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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


class HeartbeatRequest(BaseModel):
    running: list[RunningJob] = Field(default_factory=list, max_length=256)
    slots: int = Field(1, ge=1, le=256)
    labels: list[str] = Field(default_factory=list, max_length=64)
    capabilities: Capabilities | None = None
    # GPU inventory: {"gpus": [{"id", "model", "memory_mib", "uuid", "healthy", "problem"}],
    # "driver_version", "cuda_version", "source", "problems"}
    gpus: dict[str, Any] | None = None


class AttemptBody(BaseModel):
    attempt: int = Field(**ROW_ID)


class LogLineIn(BaseModel):
    seq: int = Field(ge=0, le=2**62)
    step: int = Field(-1, ge=-1, le=10_000)
    stream: str = Field("stdout", max_length=16)
    text: str
    ts: float = Field(allow_inf_nan=False)


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
