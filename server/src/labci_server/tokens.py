"""Opaque bearer tokens: only their SHA-256 is stored, so a database leak leaks no token."""

from __future__ import annotations

import hashlib
import secrets

# Each kind of credential has its own prefix: a route can tell at a glance that it was sent
# the wrong kind (and secret scanners can tell what they found).
REGISTRATION_TOKEN_PREFIX = "labcireg"  # noqa: S105 — prefixes, not secrets
RUNNER_TOKEN_PREFIX = "labcirun"  # noqa: S105
JOB_TOKEN_PREFIX = "labcijob"  # noqa: S105
HOOK_TOKEN_PREFIX = "labcihook"  # noqa: S105


def bearer_value(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <credential>` header, if it has one."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
