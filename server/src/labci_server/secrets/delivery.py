"""Which secrets a job gets: the ones its workflow names, and only for trusted code.

A job's spec is scanned for `${{ }}` expressions in the fields where the workflow format
lets `secrets` expand (env values, `run`, step names, `working-directory`: the spec's own
`field_kind`), with the spec's own expression parser; each `secrets.NAME` (or
`secrets['NAME']`) found is one name. A name computed at run time (`secrets[matrix.k]`,
`toJSON(secrets)`) names nothing: a job gets only what its file names literally.

Nothing for code that is not trusted: a run from a fork (`run.trusted` false, or its
event from a fork) or of a trigger outside `TRUSTED_TRIGGERS`. There `${{ secrets.X }}`
expands to "" on the runner, as on GitHub.

A repository's secret overrides the server-wide one of the same name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from sqlmodel.ext.asyncio.session import AsyncSession

from labci_spec.errors import ExpressionError
from labci_spec.expressions import find_expressions, references
from labci_spec.rules import field_kind

from ..context import ServerContext
from ..db.models import Job, Run
from ..db.queries import secrets as queries
from ..db.queries.events import get_event
from ..errors import SecretKeyError
from ..settings import Settings
from .keys import SETTING, load_keyring
from .store import SERVER_SCOPE, repository_scope, where_kept

TRUSTED_TRIGGERS: Final = frozenset(
    {"push", "pull_request", "workflow_dispatch", "baseline", "schedule"}
)
SECRETS_CONTEXT: Final = "secrets"


def referenced_secrets(spec: Mapping[str, Any]) -> set[str]:
    """The (upper-case) secret names a job instance's spec (`JobInstance` as JSON) names."""
    job = spec.get("job")
    if not isinstance(job, Mapping):
        return set()
    names: set[str] = set()
    for loc, text in _strings(job, ("jobs", str(spec.get("job_id", "")))):
        kind = field_kind(loc)
        if kind is None or SECRETS_CONTEXT not in kind.contexts or "${{" not in text:
            continue
        try:
            embedded = find_expressions(text)
        except ExpressionError:
            continue  # the planner validated the file; nothing to expand here
        for expression in embedded:
            for ref in references(expression.tree):
                if ref.path[0] == SECRETS_CONTEXT and len(ref.path) > 1:
                    names.add(ref.path[1].upper())
    return names


def _strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))
    elif isinstance(value, str):
        yield loc, value


async def may_have_secrets(session: AsyncSession, run: Run) -> bool:
    """Whether `run` runs trusted code: not from a fork, of a trusted trigger."""
    if not run.trusted or run.trigger not in TRUSTED_TRIGGERS:
        return False
    event = await get_event(session, run.event_id)
    return event is not None and not event.from_fork


async def secrets_for_job(
    sc_or_settings: ServerContext | Settings, session: AsyncSession, run: Run, job: Job
) -> dict[str, str]:
    """The decrypted secrets `job` references, by name; `{}` for untrusted code.

    A referenced name that is stored nowhere is left out (it expands to ""). A stored one
    that no key opens is a SecretKeyError: `labci serve` checks the key at start, so that
    means the key changed under a running server."""
    settings = sc_or_settings if isinstance(sc_or_settings, Settings) else sc_or_settings.settings
    if not await may_have_secrets(session, run):
        return {}
    names = referenced_secrets(job.spec)
    if not names:
        return {}
    rows = await queries.secrets_for_scopes(
        session, scopes=(SERVER_SCOPE, repository_scope(run.repository_id)), names=names
    )
    if not rows:
        return {}
    keyring = load_keyring(settings.secret_key)
    if keyring is None:
        raise SecretKeyError(f"{SETTING} is not set: job {job.id} needs stored secrets")
    found: dict[str, str] = {}
    # Server-wide first, so that the repository's own of the same name replaces it.
    for row in sorted(rows, key=lambda r: r.scope != SERVER_SCOPE):
        found[row.name] = keyring.decrypt(row.ciphertext, what=where_kept(row))
    return found
