"""Secrets: stored encrypted, set and listed (names only) by administrators, handed to the
runner only for the jobs of trusted code that reference them.

- `keys`: LABCI_SECRET_KEY's Fernet keys (the first encrypts, all decrypt; rotation).
- `names`: what a secret may be called and hold.
- `store`: set, list, delete, rotate, and the check `labci serve` makes when it starts.
- `delivery`: `secrets_for_job`, the secrets of one job's payload.

The runner redacts every value it was given from logs and reports before they leave it.
"""

from .delivery import referenced_secrets, secrets_for_job
from .keys import Keyring, generate_key, load_keyring, require_keyring
from .names import MAX_SECRET_BYTES, MAX_SECRETS_PER_SCOPE, MIN_SECRET_LENGTH
from .store import (
    Scope,
    check_secret_key,
    check_stored_secrets,
    delete_secret,
    list_secrets,
    put_secret,
    rotate_key,
)

__all__ = [
    "MAX_SECRETS_PER_SCOPE",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_LENGTH",
    "Keyring",
    "Scope",
    "check_secret_key",
    "check_stored_secrets",
    "delete_secret",
    "generate_key",
    "list_secrets",
    "load_keyring",
    "put_secret",
    "referenced_secrets",
    "require_keyring",
    "rotate_key",
    "secrets_for_job",
]
