"""What a job needs from a machine (`resources`) and how its container is set up (`container`).

Experiments from pull requests are untrusted code on a lab's most expensive machines, so a
workflow can loosen the container's defaults only through the few doors opened here:
`network: host` and an allow-list of `docker run` options. Everything else that `docker
run` accepts is refused with the reason and, where there is one, the labci way to get it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from labci_spec.fields import NOT_BOOL, AsText, Count, Frozen, Size, parse_size, shown_text

MAX_GPUS = 64
MAX_CPUS = 1024
ULIMITS = ("core", "memlock", "nofile", "nproc", "stack")
ALLOWED_OPTIONS = ("--init", "--shm-size", "--ulimit")
# Options a workflow asks for most often, and what to do instead.
REFUSED_OPTIONS = {
    "--privileged": "privileged containers are never allowed",
    "--cap-add": "extra capabilities are never allowed",
    "--device": "devices are not allowed; GPUs come from `resources.gpus`",
    "--gpus": "use `resources.gpus`; labci pins the GPUs the scheduler assigns",
    "--network": "use `container.network` (none or host)",
    "--net": "use `container.network` (none or host)",
    "--volume": "volumes are not allowed; the workspace and $LABCI_OUTPUT are mounted for you",
    "-v": "volumes are not allowed; the workspace and $LABCI_OUTPUT are mounted for you",
    "--mount": "mounts are not allowed; the workspace and $LABCI_OUTPUT are mounted for you",
    "--ipc": "sharing IPC is not allowed; for PyTorch data loaders use --shm-size",
    "--pid": "sharing the process namespace is not allowed",
    "--security-opt": "security options cannot be loosened",
    "--userns": "user namespaces cannot be changed",
    "--cgroupns": "cgroup namespaces cannot be changed",
    "--runtime": "the runtime is chosen by the runner",
    "--user": "the user is chosen by the runner (non-root when the image has one)",
    "-u": "the user is chosen by the runner (non-root when the image has one)",
    "--env": "use `env:`",
    "-e": "use `env:`",
    "--memory": "use `resources.memory`",
    "-m": "use `resources.memory`",
    "--cpus": "use `resources.cpus`",
}


@dataclass(frozen=True)
class ContainerOptions:
    """The allow-listed `docker run` options of a job, parsed."""

    init: bool = False
    shm_size_bytes: int | None = None
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)


def parse_container_options(text: str) -> ContainerOptions:
    """Parse `container.options`; ValueError says which option is refused and why."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split options: {exc}") from exc
    init, shm_size, ulimits = False, None, {}
    i = 0
    while i < len(words):
        name, _, value = words[i].partition("=")
        if name not in ALLOWED_OPTIONS:
            why = REFUSED_OPTIONS.get(name, f"allowed: {', '.join(ALLOWED_OPTIONS)}")
            raise ValueError(f"option {shown_text(name)} is not allowed ({why})")
        if name == "--init":
            if value:
                raise ValueError("--init takes no value")
            init = True
            i += 1
            continue
        if not value:
            if i + 1 >= len(words):
                raise ValueError(f"{name} needs a value")
            value = words[i + 1]
            i += 1
        i += 1
        if name == "--shm-size":
            shm_size = parse_size(value)
        else:
            limit, soft, hard = _ulimit(value)
            ulimits[limit] = (soft, hard)
    return ContainerOptions(init=init, shm_size_bytes=shm_size, ulimits=ulimits)


def _ulimit(value: str) -> tuple[str, int, int]:
    limit, _, amounts = value.partition("=")
    if limit not in ULIMITS:
        allowed = ", ".join(ULIMITS)
        raise ValueError(f"--ulimit {shown_text(limit)} is not allowed (allowed: {allowed})")
    soft_text, _, hard_text = amounts.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise ValueError(
            f"--ulimit {shown_text(value)}: expected {limit}=<soft>[:<hard>]"
        ) from None
    if hard != -1 and (soft == -1 or soft > hard):
        raise ValueError(f"--ulimit {shown_text(value)}: the soft limit is above the hard limit")
    return limit, soft, hard


def _check_options(text: str) -> str:
    parse_container_options(text)
    return text


def _image_shorthand(value: Any) -> Any:
    """`container: lab/pytorch:2.4` means `container: {image: lab/pytorch:2.4}`."""
    return {"image": value} if isinstance(value, str) else value


class Container(Frozen):
    """The image a job's steps run in, with no network and no privileges unless asked."""

    image: Annotated[str, AsText(), Field(min_length=1, max_length=512)]
    options: Annotated[str, AsText(), AfterValidator(_check_options)] = ""
    network: Literal["none", "host"] = "none"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _image_shorthand(value)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        mapping = handler(core_schema)
        return {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 512}, mapping]}

    @property
    def parsed_options(self) -> ContainerOptions:
        return parse_container_options(self.options)


class Resources(Frozen):
    """What a runner must have free for the job; the scheduler matches it, the executor enforces it."""

    gpus: Count = Field(default=0, ge=0, le=MAX_GPUS)
    cpus: Annotated[float, Field(gt=0, le=MAX_CPUS, allow_inf_nan=False), NOT_BOOL] | None = None
    memory_bytes: Size | None = Field(default=None, alias="memory")
    gpu_memory_bytes: Size | None = Field(default=None, alias="gpu-memory")

    @model_validator(mode="after")
    def _gpu_memory_needs_gpus(self) -> Resources:
        if self.gpu_memory_bytes is not None and self.gpus == 0:
            raise ValueError("`gpu-memory` needs `gpus` of at least 1")
        return self
