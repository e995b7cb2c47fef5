"""The `on:` section: which events start a workflow, and the inputs of a manual run.

`on` accepts GitHub's three spellings (`on: push`, `on: [push, pull_request]`, and a
mapping); all of them validate into one `Triggers`. Filters are validated here (each
glob and cron expression, one of `branches`/`branches-ignore`); matching an event
against them is `labci_spec.filters`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from labci_spec.cron import parse_cron
from labci_spec.errors import CronError, InputsError
from labci_spec.fields import (
    ID_PATTERN,
    AsText,
    Flag,
    Frozen,
    OneOrManySchema,
    Text,
    one_or_many,
    refusing,
    scalar_text,
)
from labci_spec.globs import pattern_problem

EVENTS = ("push", "pull_request", "workflow_dispatch", "schedule")
PULL_REQUEST_TYPES = ("opened", "synchronize", "reopened", "ready_for_review")
DEFAULT_PULL_REQUEST_TYPES = ("opened", "synchronize", "reopened")
INPUT_TYPES = ("string", "number", "boolean", "choice")
_CRON_PROBE = datetime(2001, 1, 1, tzinfo=UTC)
MAX_INPUT_CHARS = 4096


def _check_cron(expression: str) -> str:
    try:
        # A schedule that can never fire (`0 0 31 2 *`) is a mistake worth a located error.
        parse_cron(expression).next_after(_CRON_PROBE)
    except CronError as exc:
        raise ValueError(str(exc)) from exc
    return expression


Pattern = Annotated[str, AsText(), AfterValidator(refusing(pattern_problem))]
Patterns = Annotated[list[Pattern], BeforeValidator(one_or_many), OneOrManySchema()]


SCALAR_SCHEMA: dict[str, Any] = {"type": ["string", "number", "boolean"]}


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("expected a string, number or boolean")
    return value


def _crons_required(value: Any) -> Any:
    """`on: [push, schedule]` names no time: refuse it rather than drop the schedule."""
    if value is None:
        raise ValueError("`schedule` needs a list of times, e.g. `schedule: [{cron: '0 3 * * *'}]`")
    return value


def _empty_if_null(value: Any) -> Any:
    return {} if value is None else value


class PushTrigger(Frozen):
    """A push to a branch; GitHub's branch and path filters."""

    branches: Patterns | None = None
    branches_ignore: Patterns | None = Field(default=None, alias="branches-ignore")
    paths: Patterns | None = None
    paths_ignore: Patterns | None = Field(default=None, alias="paths-ignore")


PullRequestType = Literal["opened", "synchronize", "reopened", "ready_for_review"]


class PullRequestTrigger(PushTrigger):
    """A pull request opened or updated; `branches` filter the pull request's *base* branch."""

    types: Annotated[list[PullRequestType], BeforeValidator(one_or_many), OneOrManySchema()] = (
        Field(default_factory=lambda: list(DEFAULT_PULL_REQUEST_TYPES))
    )


class DispatchInput(Frozen):
    """One typed input of a manual (`workflow_dispatch`) run, available as `inputs.<name>`."""

    description: Text | None = None
    required: Flag = False
    type: Literal["string", "number", "boolean", "choice"] = "string"
    default: Annotated[Any, AfterValidator(_scalar), WithJsonSchema(SCALAR_SCHEMA)] = None
    options: list[Text] | None = None

    @model_validator(mode="after")
    def _check(self) -> DispatchInput:
        if self.type == "choice" and not self.options:
            raise ValueError("a choice input needs a non-empty `options` list")
        if self.type != "choice" and self.options is not None:
            raise ValueError(f"`options` is only for `type: choice`, not {self.type}")
        if self.default is not None:
            try:
                coerce_input(self, self.default, what="default")
            except InputsError as exc:
                raise ValueError(str(exc)) from exc
        return self


InputName = Annotated[str, Field(pattern=ID_PATTERN, max_length=100)]


class WorkflowDispatch(Frozen):
    """A run started by a person (`labci dispatch`), with typed inputs."""

    inputs: dict[InputName, DispatchInput] = Field(default_factory=dict)


class Schedule(Frozen):
    """A time-based run on the default branch; `cron` is POSIX cron in UTC."""

    cron: Annotated[str, AsText(), AfterValidator(_check_cron)]


class Triggers(Frozen):
    """The events a workflow reacts to; an event left as None is ignored."""

    push: Annotated[PushTrigger | None, BeforeValidator(_empty_if_null)] = None
    pull_request: Annotated[PullRequestTrigger | None, BeforeValidator(_empty_if_null)] = None
    workflow_dispatch: Annotated[WorkflowDispatch | None, BeforeValidator(_empty_if_null)] = None
    schedule: Annotated[list[Schedule] | None, BeforeValidator(_crons_required)] = Field(
        default=None, min_length=1
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """`on: push` and `on: [push, pull_request]` are mappings of events to no filters."""
        if isinstance(value, str):
            return {value: None}
        if isinstance(value, list):
            if not all(
                isinstance(item, str | int) and not isinstance(item, bool) for item in value
            ):
                raise ValueError(
                    "a list of events holds only event names; to give an event filters,"
                    " write `on:` as a mapping"
                )
            names = [str(item) for item in value]
            twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
            if twice is not None:
                raise ValueError(f"event '{twice}' is listed twice")
            return dict.fromkeys(names)
        return value

    @model_serializer(mode="wrap")
    def _listened_only(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Events not listened to are left out: `pull_request: null` would read back as
        `pull_request:` with no filters, which listens to every pull request."""
        dumped = handler(self)
        if isinstance(dumped, dict):
            return {event: value for event, value in dumped.items() if value is not None}
        return dumped

    @model_validator(mode="after")
    def _some_event(self) -> Triggers:
        if not any(getattr(self, event) is not None for event in EVENTS):
            raise ValueError(f"expected at least one of {', '.join(EVENTS)}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        mapping = handler(core_schema)
        event = {"type": "string", "enum": list(EVENTS)}
        return {"anyOf": [event, {"type": "array", "items": event, "minItems": 1}, mapping]}


def coerce_input(spec: DispatchInput, value: Any, *, what: str = "value") -> str | float | bool:
    """`value` (typed, or text from a command line) as the input's type; InputsError if it is not."""
    if spec.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise InputsError(f"{what} {value!r} is not a boolean (true or false)")
    if spec.type == "number":
        if isinstance(value, bool):
            raise InputsError(f"{what} {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputsError(f"{what} {value!r} is not a number") from None
        if not math.isfinite(number):
            raise InputsError(f"{what} {value!r} is not a finite number")
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    text = scalar_text(value)
    if not isinstance(text, str):
        raise InputsError(f"{what} {value!r} is not text")
    if len(text) > MAX_INPUT_CHARS:
        raise InputsError(f"{what} value is longer than {MAX_INPUT_CHARS} characters")
    if spec.type == "choice" and text not in (spec.options or []):
        raise InputsError(f"{what} {text!r} is not one of: {', '.join(spec.options or [])}")
    return text


def default_inputs(dispatch: WorkflowDispatch | None) -> dict[str, str | float | bool]:
    """The `inputs` context outside manual runs (push, pull request): every declared
    input at its default, "" (false for booleans) where it has none. GitHub Actions leaves
    them empty instead, which turns `runs-on: ${{ inputs.gpu }}` into no label at all."""
    if dispatch is None:
        return {}
    result: dict[str, str | float | bool] = {}
    for name, spec in dispatch.inputs.items():
        if spec.default is not None:
            result[name] = coerce_input(spec, spec.default)
        else:
            result[name] = False if spec.type == "boolean" else ""
    return result


def resolve_inputs(
    dispatch: WorkflowDispatch, given: Mapping[str, Any]
) -> dict[str, str | float | bool]:
    """The `inputs` context of a manual run: `given` checked and typed, defaults filled in.

    Raises InputsError listing every problem: unknown names, missing required inputs,
    values of the wrong type.
    """
    problems = [f"unknown input {name!r}" for name in given if name not in dispatch.inputs]
    result: dict[str, str | float | bool] = {}
    for name, spec in dispatch.inputs.items():
        if name in given:
            try:
                result[name] = coerce_input(spec, given[name], what=f"input {name!r}:")
            except InputsError as exc:
                problems.append(str(exc))
        elif spec.default is not None:
            result[name] = coerce_input(spec, spec.default)
        elif spec.required:
            problems.append(f"input {name!r} is required")
        else:
            result[name] = False if spec.type == "boolean" else ""
    if problems:
        raise InputsError("; ".join(problems))
    return result
