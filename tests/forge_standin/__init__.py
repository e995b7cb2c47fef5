"""Test-side GitHub stand-in (see docs: style guide section 7, design "What real means here").

Needs the npm packages pinned in ``package.json``: ``npm ci --prefix tests/forge_standin``.
"""

from .app import ConnectionDroppedError, Recorded, Standin, create_standin
from .openapi import OpenAPIChecker, OpenAPINotInstalledError
from .repos import BareRepo, create_bare_repo, git
from .server import StandinServer
from .webhooks import (
    check_run_payload,
    encode,
    headers,
    issue_comment_payload,
    load_examples,
    pull_request_payload,
    push_payload,
    repository_payload,
    sign,
)

__all__ = [
    "BareRepo",
    "ConnectionDroppedError",
    "OpenAPIChecker",
    "OpenAPINotInstalledError",
    "Recorded",
    "Standin",
    "StandinServer",
    "check_run_payload",
    "create_bare_repo",
    "issue_comment_payload",
    "create_standin",
    "encode",
    "git",
    "headers",
    "load_examples",
    "pull_request_payload",
    "push_payload",
    "repository_payload",
    "sign",
]
