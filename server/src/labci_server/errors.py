"""Errors of the labci server, one type per decision a caller makes.

LabciError
├── NotFound            -> 404
├── Conflict            -> 409 (e.g. a stale job attempt)
│   └── NoSecretKey     -> 409: LABCI_SECRET_KEY is unset, so no secret can be stored
├── Unauthorized        -> 401
├── Forbidden           -> 403
├── BadRequest          -> 400
├── ConfigError         -> refuses to start, names the variable
│   └── SecretKeyError  -> LABCI_SECRET_KEY is malformed, or decrypts not a stored secret
├── PlanError           -> the run cannot be planned (an `error` status explains)
└── ForgeError
    ├── ForgeUnavailable(retry_after_s)  -> retried later, never shown as a red check
    └── ForgeRejected(status)            -> dead-lettered with the reason
"""

from __future__ import annotations


class LabciError(Exception):
    status_code = 500


class NotFound(LabciError):
    status_code = 404


class Conflict(LabciError):
    status_code = 409


class Unauthorized(LabciError):
    status_code = 401


class Forbidden(LabciError):
    status_code = 403


class BadRequest(LabciError):
    status_code = 400


class ConfigError(LabciError):
    pass


class NoSecretKey(Conflict):
    """No LABCI_SECRET_KEY: the server keeps no secrets (an operator sets the key)."""


class SecretKeyError(ConfigError):
    """LABCI_SECRET_KEY is not a list of Fernet keys, or none of them opens a stored secret."""


class PlanError(LabciError):
    pass


class ForgeError(LabciError):
    pass


class ForgeUnavailable(ForgeError):
    """The forge could not take the request now; retry after `retry_after_s` if given."""

    def __init__(
        self, message: str, retry_after_s: float | None = None, *, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        # A rate limit: without `retry_after_s`, wait longer than for an outage.
        self.rate_limited = rate_limited


class ForgeRejected(ForgeError):
    """The forge refused the request for good (4xx other than rate limits)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
