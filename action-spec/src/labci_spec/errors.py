"""Errors raised by labci_spec.

Every error this package raises derives from one root, so a caller that only
needs "the user's input was bad" catches `LabciSpecError`::

    LabciSpecError
    ├── SpecErrors        a workflow file is invalid; carries every located problem
    ├── MetricsError      a job's metrics (file or `::metric` line) is invalid
    ├── ExpressionError   a `${{ }}` expression is malformed or cannot be evaluated;
    │                     `offset` locates it in the text it came from
    ├── CronError         a `schedule` cron expression is invalid
    └── InputsError       the inputs given to a manual run do not fit the workflow's `inputs`

`SpecError` is not an exception: it is one located problem inside a
`SpecErrors`, printed as ``path:line:column: message`` (1-based, like a
compiler), so the planner can put each one on the right line of a PR.
"""

from __future__ import annotations

from dataclasses import dataclass


class LabciSpecError(Exception):
    """Root of every error raised by labci_spec."""


@dataclass(frozen=True)
class SpecError:
    """One problem in a workflow file, at a 1-based line and column."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class SpecErrors(LabciSpecError):
    """A workflow file is invalid. Carries all of its problems, in file order."""

    def __init__(self, errors: list[SpecError]) -> None:
        if not errors:
            raise ValueError("SpecErrors needs at least one SpecError")
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


class MetricsError(LabciSpecError):
    """A metrics file is invalid; the message names the offending metric."""


class ExpressionError(LabciSpecError):
    """An expression is malformed, uses what is not allowed, or cannot be evaluated.

    `offset` is the 0-based character offset, in the text handed to the parser, of the
    place the problem starts, so a loader can turn it into a line and column.
    """

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class CronError(LabciSpecError):
    """A cron expression is invalid; the message names the field and the allowed range."""


class InputsError(LabciSpecError):
    """Inputs of a manual run are unknown, missing or of the wrong type; lists every problem."""
