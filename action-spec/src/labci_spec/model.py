"""The workflow format as pydantic models: one `.labci/*.yml` file is one `Workflow`.

The models accept exactly the YAML surface (keys spelled `runs-on`, a label where a list
is allowed, `16G` for a size) and keep one canonical form, so that the JSON Schema
generated from them (`labci_spec.schema`) is what editors check against, and a model
dumped to JSON (`model_dump(mode="json", by_alias=True)`) validates again unchanged on a
runner. `labci_spec.loader` builds them from YAML text and puts every error on its line;
rules that span several fields (needs, expressions, matrix axes) live in `labci_spec.rules`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema

from labci_spec.fields import (
    ID_PATTERN,
    MAX_TEXT_CHARS,
    NOT_BOOL,
    AsText,
    Count,
    Env,
    Flag,
    Frozen,
    MappingSpelling,
    Name,
    Names,
    OneOrManySchema,
    Size,
    SurfaceSchema,
    Text,
    one_or_many,
    refusing,
)
from labci_spec.resources import Container, Resources
from labci_spec.triggers import Triggers

MIN_TIMEOUT_MINUTES = 1
MAX_TIMEOUT_MINUTES = 3 * 24 * 60
DEFAULT_TIMEOUT_MINUTES = 60
DISPLAY_NAME_CHARS = 60
METRIC_NAME_PATTERN = r"^[A-Za-z0-9_./-]{1,128}$"
DEFAULT_ARTIFACTS_MAX_BYTES = 1024**3
DEFAULT_ALPHA = 0.05
MAX_ALPHA = 0.5
# Seeds of one experiment, in all: the matrix's own cap (labci_spec.matrix.MAX_MATRIX_JOBS).
MAX_REPEATS = 256
MAX_TEST_SIZE = 10**9
REPEATS_SPELLINGS = "a matrix axis, or a mapping such as {axis: seed, max: 20}"
# The shells a step can name; anything else must be a command template holding {0}.
SHELLS = {
    "bash": ("bash", "--noprofile", "--norc", "-eo", "pipefail", "{0}"),
    "sh": ("sh", "-e", "{0}"),
    "python": ("python", "{0}"),
}
DEFAULT_SHELL = "bash"

TimeoutMinutes = Annotated[Count, Field(ge=MIN_TIMEOUT_MINUTES, le=MAX_TIMEOUT_MINUTES)]
JobId = Annotated[str, Field(pattern=ID_PATTERN, max_length=100)]
AxisName = Annotated[str, Field(pattern=ID_PATTERN)]
JobNames = Annotated[list[Name], BeforeValidator(one_or_many), OneOrManySchema()]


def relative_path_problem(path: str) -> str | None:
    """Why `path` cannot name something inside a job's directory, or None if it can."""
    if not path.strip():
        return "must not be empty"
    if path.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", path):
        return "must be a relative path"
    if ".." in re.split(r"[/\\]", path):
        return "must not contain '..'"
    return None


def metrics_file_problem(file: str) -> str | None:
    """Why `file` cannot name a metrics file under $LABCI_OUTPUT, or None if it can."""
    if not file or file.endswith(("/", "\\")):
        return "must name a file"
    problem = relative_path_problem(file)
    if problem == "must be a relative path":
        return "must be a relative path under $LABCI_OUTPUT"
    if problem is None and not file.lower().endswith(METRICS_SUFFIXES):
        return f"must end in {', '.join(METRICS_SUFFIXES)} (the format is read from the suffix)"
    return problem


METRICS_SUFFIXES = (".json", ".yaml", ".yml", ".csv")


def _shell(shell: str) -> str:
    if shell not in SHELLS and "{0}" not in shell:
        known = ", ".join(SHELLS)
        raise ValueError(f"unknown shell {shell!r} (use {known}, or a command with {{0}})")
    return shell


def shell_command(shell: str | None, script: str) -> list[str]:
    """The argv that runs a step's script file under `shell` (bash by default)."""
    template = SHELLS.get(shell or DEFAULT_SHELL)
    if template is None:
        import shlex

        template = tuple(shlex.split(shell or ""))
    return [word.replace("{0}", script) for word in template]


RelPath = Annotated[str, AsText(), AfterValidator(refusing(relative_path_problem))]
RelPaths = Annotated[
    list[RelPath], BeforeValidator(one_or_many), Field(min_length=1), OneOrManySchema()
]
MetricsFiles = Annotated[
    list[Annotated[str, AsText(), AfterValidator(refusing(metrics_file_problem))]],
    BeforeValidator(one_or_many),
    Field(min_length=1),
    OneOrManySchema(),
]
Shell = Annotated[str, AsText(), AfterValidator(_shell)]


class RunDefaults(Frozen):
    shell: Shell | None = None
    working_directory: RelPath | None = Field(default=None, alias="working-directory")


class Defaults(Frozen):
    """Defaults for every `run:` step of a workflow or job."""

    run: RunDefaults = Field(default_factory=RunDefaults)


class Step(Frozen):
    """One command run in the job's workspace, by `shell` (bash by default)."""

    name: Name | None = None
    if_: Text | None = Field(default=None, alias="if")
    run: Annotated[Name, Field(max_length=MAX_TEXT_CHARS)]
    env: Env = Field(default_factory=dict)
    shell: Shell | None = None
    working_directory: RelPath | None = Field(default=None, alias="working-directory")
    timeout_minutes: TimeoutMinutes | None = Field(default=None, alias="timeout-minutes")
    continue_on_error: Flag = Field(default=False, alias="continue-on-error")

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


class Matrix(Frozen):
    """Axes of values, plus `include`/`exclude` entries, as in GitHub Actions."""

    axes: dict[AxisName, Annotated[list[Any], Field(min_length=1)]]
    include: list[dict[AxisName, Any]] = Field(default_factory=list)
    exclude: list[dict[AxisName, Any]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        axes = {k: v for k, v in value.items() if k not in ("include", "exclude")}
        split = {"axes": axes}
        for key in ("include", "exclude"):
            if key in value:
                split[key] = value[key]
        return split

    @model_validator(mode="after")
    def _not_empty(self) -> Matrix:
        if not self.axes and not self.include:
            raise ValueError("a matrix needs at least one axis or `include` entry")
        return self

    @model_serializer(mode="plain")
    def _surface(self) -> dict[str, Any]:
        surface: dict[str, Any] = dict(self.axes)
        if self.include:
            surface["include"] = self.include
        if self.exclude:
            surface["exclude"] = self.exclude
        return surface

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        entries = {"type": "array", "items": {"type": "object"}}
        return {
            "type": "object",
            "description": "axes (lists of values) plus `include` and `exclude` entries",
            "properties": {"include": entries, "exclude": entries},
            "additionalProperties": {"type": "array", "minItems": 1},
        }


class Strategy(Frozen):
    """How a job fans out: one instance per `matrix` combination, at most `max-parallel` at
    once; with `fail-fast` (the default) the first failure cancels the instances not done."""

    matrix: Matrix
    fail_fast: Flag = Field(default=True, alias="fail-fast")
    max_parallel: Count | None = Field(default=None, ge=1, alias="max-parallel")


TOLERANCE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
    ],
    "description": "an absolute amount (0.005) or a percentage of the baseline (2%)",
}


class Tolerance(Frozen):
    """How far a metric may move before it counts as changed: absolute, or % of the baseline."""

    amount: float = Field(ge=0, allow_inf_nan=False)
    relative: bool = False

    @model_validator(mode="before")
    @classmethod
    def _surface(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a number such as 0.005 or a percentage such as 2%")
        if isinstance(value, int | float):
            return {"amount": value}
        if isinstance(value, str):
            text = value.strip()
            relative = text.endswith("%")
            try:
                amount = float(text.removesuffix("%").strip())
            except ValueError:
                raise ValueError(
                    f"expected a number such as 0.005 or a percentage such as 2%, got {value!r}"
                ) from None
            return {"amount": amount, "relative": relative}
        return value

    @model_serializer(mode="plain")
    def _dump(self) -> float | str:
        return f"{self.amount:g}%" if self.relative else self.amount

    def allowed(self, baseline: float) -> float:
        """The largest change from `baseline` that still counts as unchanged."""
        return abs(baseline) * self.amount / 100 if self.relative else self.amount


class Compare(Frozen):
    """How one metric is judged against the baseline."""

    goal: Literal["max", "min"]
    tolerance: Annotated[Tolerance, SurfaceSchema(TOLERANCE_SCHEMA)] = Field(
        default_factory=lambda: Tolerance(amount=0)
    )
    gate: Flag = True
    # How many test items a share (accuracy in [0, 1], or a percentage) was measured on:
    # the server puts a binomial floor under the metric's variance with it.
    test_size: Annotated[Count, Field(ge=1, le=MAX_TEST_SIZE)] | None = Field(
        default=None, alias="test-size"
    )


class Repeats(Frozen):
    """`repeats: {axis: seed, max: 20}`: the axis whose instances are samples of one
    experiment, and how many seeds labci may run in all: it starts with the axis's
    values and may add the largest + 1, + 2, ... while the verdict is unsettled."""

    axis: AxisName
    # Seeds in all, the axis's own included; the ones added are `instances.extra_seeds`.
    max: Annotated[Count, Field(ge=2, le=MAX_REPEATS)] | None = None


MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN)]


class MetricsSpec(Frozen):
    """Where a job's metrics come from and how each is compared with the baseline.

    Files (JSON, YAML or CSV, by suffix) are read from $LABCI_OUTPUT after the steps;
    `::metric name=<name>::<value>` lines printed by a step are metrics too.
    """

    file: MetricsFiles | None = None
    files: MetricsFiles | None = None
    # The axis name; `repeats: {axis: seed, max: 20}` sets `max_repeats` too, and a model
    # dumps back to that mapping (`_repeats_mapping`).
    repeats: (
        Annotated[AxisName, MappingSpelling(Repeats, "axis", expected=REPEATS_SPELLINGS)] | None
    ) = None
    max_repeats: SkipJsonSchema[Annotated[Count, Field(ge=2, le=MAX_REPEATS)] | None] = None
    compare: dict[MetricName, Compare] = Field(default_factory=dict)
    # The significance level of the verdict's statistical test.
    alpha: Annotated[float, Field(gt=0, lt=MAX_ALPHA, allow_inf_nan=False), NOT_BOOL] = (
        DEFAULT_ALPHA
    )
    # auto: when a pull request's base has no result for this job, measure it once there;
    # existing: compare only with results that already exist.
    baseline: Literal["auto", "existing"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _repeats_max(cls, value: Any) -> Any:
        """`repeats: {axis, max}` → `repeats` and `max_repeats`. A mapping that does not
        validate stays for the `repeats` field, whose errors point inside it."""
        if not isinstance(value, dict) or not isinstance(value.get("repeats"), dict):
            return value
        try:
            spelled = Repeats.model_validate(value["repeats"])
        except ValidationError:
            return value
        return {**value, "repeats": spelled.axis, "max_repeats": spelled.max}

    @model_serializer(mode="wrap")
    def _repeats_mapping(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        if isinstance(dumped, dict) and "max_repeats" in dumped:
            max_repeats = dumped.pop("max_repeats")
            if max_repeats is not None and "repeats" in dumped:
                dumped["repeats"] = {"axis": dumped["repeats"], "max": max_repeats}
        return dumped

    @model_validator(mode="after")
    def _one_spelling(self) -> MetricsSpec:
        if self.file is not None and self.files is not None:
            raise ValueError("use `file` or `files`, not both")
        return self

    @property
    def paths(self) -> list[str]:
        return list(self.file or self.files or [])


class Artifacts(Frozen):
    """Files kept after the job: globs under $LABCI_OUTPUT, with a cap on their total size."""

    paths: RelPaths
    max_size_bytes: Size = Field(default=DEFAULT_ARTIFACTS_MAX_BYTES, alias="max-size")

    @model_validator(mode="before")
    @classmethod
    def _list_shorthand(cls, value: Any) -> Any:
        return {"paths": value} if isinstance(value, list | str) else value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        mapping = handler(core_schema)
        glob = {"type": "string"}
        return {"anyOf": [glob, {"type": "array", "items": glob, "minItems": 1}, mapping]}


class Cache(Frozen):
    """Directories of the workspace kept on the runner between jobs (datasets, pip caches).

    Restored before the steps when an entry with the same `key` exists, saved after a
    successful job when none did. `key` may use `${{ hashFiles('requirements.txt') }}`.
    """

    paths: RelPaths
    key: Annotated[Text, Field(min_length=1, max_length=512)]


MAX_GROUP_CHARS = 400
CONCURRENCY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_GROUP_CHARS},
        {
            "type": "object",
            "properties": {
                "group": {"type": "string", "minLength": 1, "maxLength": MAX_GROUP_CHARS},
                "cancel-in-progress": {"type": ["boolean", "string"]},
            },
            "required": ["group"],
            "additionalProperties": False,
        },
    ],
    "description": "a group name (`${{ github.workflow }}-${{ github.ref }}`), or"
    " {group, cancel-in-progress}",
}


def _flag_or_condition(value: bool | str) -> bool | str:
    if isinstance(value, str) and not (
        value.strip().startswith("${{") and value.strip().endswith("}}")
    ):
        raise ValueError(
            "expected true, false or an expression such as"
            f" ${{{{ github.ref_name != 'main' }}}}, got {value!r}"
        )
    return value


class Concurrency(Frozen):
    """`concurrency:` as in GitHub Actions: at most one run (workflow level) or job (job
    level) of a group is in progress, and one waits; a newer one that joins the group
    cancels the one waiting, and with `cancel-in-progress` the one in progress too."""

    group: Annotated[Text, Field(min_length=1, max_length=MAX_GROUP_CHARS)]
    # A boolean, or a condition (`${{ github.ref_name != 'main' }}`) decided at planning.
    cancel_in_progress: Annotated[Flag | Text, AfterValidator(_flag_or_condition)] = Field(
        default=False, alias="cancel-in-progress"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"group": value} if isinstance(value, str) else value


class Job(Frozen):
    """One unit of work, run on a single runner whose labels include all of `runs-on`."""

    id: SkipJsonSchema[Annotated[str, Field(pattern=ID_PATTERN)]]
    name: Name | None = None
    runs_on: Names = Field(alias="runs-on")
    needs: JobNames = Field(default_factory=list)
    if_: Text | None = Field(default=None, alias="if")
    env: Env = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    timeout_minutes: TimeoutMinutes = Field(
        default=DEFAULT_TIMEOUT_MINUTES, alias="timeout-minutes"
    )
    continue_on_error: Flag = Field(default=False, alias="continue-on-error")
    container: Container | None = None
    resources: Resources = Field(default_factory=Resources)
    strategy: Strategy | None = None
    steps: list[Step] = Field(min_length=1, max_length=1000)
    metrics: MetricsSpec | None = None
    artifacts: Artifacts | None = None
    cache: Cache | None = None
    concurrency: Annotated[Concurrency, SurfaceSchema(CONCURRENCY_SCHEMA)] | None = None

    @property
    def timeout_s(self) -> int:
        return self.timeout_minutes * 60


class Workflow(Frozen):
    """One `.labci/*.yml` file: its triggers and its jobs, keyed by job id."""

    path: SkipJsonSchema[str] = ""
    # The loader fills in the file's stem ("train" for .labci/train.yml) when absent.
    name: Annotated[Name, Field(max_length=100)] | None = None
    on: Triggers
    env: Env = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    concurrency: Annotated[Concurrency, SurfaceSchema(CONCURRENCY_SCHEMA)] | None = None
    jobs: dict[JobId, Job] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _check_job_ids(self) -> Workflow:
        for key, job in self.jobs.items():
            if job.id != key:
                raise ValueError(f"jobs.{key}: id is {job.id!r}, expected {key!r}")
        return self
