"""Errors raised by labci_runner.

One root, and a type for each decision the caller makes::

    LabciRunnerError
    ├── ConfigError          a setting or runner.json is missing/invalid: print and exit
    ├── ServerUnavailable    transport errors or 5xx outlived the retries: try again later
    ├── ServerRejected       a 4xx answer (status, detail): do not retry
    │   ├── Unauthorized     401: the runner token is wrong or revoked
    │   └── StaleAttempt     409, or 401 on a job-token call: the attempt moved on or
    │                        ended (its token with it); stop the job and report nothing
    ├── CheckoutFailed       git could not produce the workspace   ┐ infrastructure: the job
    ├── ExecutorError        the executor could not run the steps  ┘ completes as "error"
    ├── StepSetupFailed      the workflow asks for what cannot be (a missing working
    │                        directory): that step fails, like a non-zero exit
    └── MetricsInvalid       the experiment's metrics file is missing, too big or malformed

A failing step, a timeout or a cancellation are *results* (`JobOutcome.outcome`), never
exceptions: "the experiment failed" is reported, "labci failed" is raised.
"""

from __future__ import annotations


class LabciRunnerError(Exception):
    """Root of every error raised by labci_runner."""


class ConfigError(LabciRunnerError):
    """The runner cannot start; the message names the variable or file to fix."""


class ServerUnavailable(LabciRunnerError):
    """The server could not be reached (or kept answering 5xx) after all retries."""


class ServerRejected(LabciRunnerError):
    """The server refused a request with a 4xx status; retrying would not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status = status
        self.detail = detail


class Unauthorized(ServerRejected):
    """401: the runner token is unknown or revoked (a job token's 401 is a StaleAttempt)."""


class StaleAttempt(ServerRejected):
    """409, or 401 for a job token: this attempt is no longer current (or has ended, and
    its token with it); stop quietly and do not report."""


class CheckoutFailed(LabciRunnerError):
    """git could not clone or check out the commit; carries git's stderr tail."""


class ExecutorError(LabciRunnerError):
    """The executor could not start or supervise the steps (not a failing step)."""


class StepSetupFailed(LabciRunnerError):
    """A step cannot start because of its workflow (not labci): the step fails with this."""


class MetricsInvalid(LabciRunnerError):
    """The job's metrics file is missing, escapes the output dir, too big or malformed."""
