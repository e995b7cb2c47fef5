"""Encryption at rest: LABCI_SECRET_KEY's Fernet keys, through `cryptography`'s MultiFernet.

The setting holds one or more comma-separated Fernet keys (32 url-safe base64-encoded
bytes each). The first encrypts; every one of them decrypts. That is how a key is rotated:
prepend a new key, run `labci secrets rotate-key` (every stored secret is re-encrypted with
the first key), then drop the old one.

A Fernet token is AES-128-CBC with an HMAC-SHA256 over it: a ciphertext that was changed,
or that no key of the list made, fails to decrypt rather than decrypting to garbage. The
keys never live in the database: a copy of the database alone opens nothing.

Errors never show a key or a value; they name the setting and say what to do.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from ..errors import NoSecretKey, SecretKeyError
from ..settings import Settings

SETTING = "LABCI_SECRET_KEY"
NO_KEY = (
    f"this server keeps no secrets: {SETTING} is not set (make a key with `labci secrets "
    "generate-key` and set it on the server)"
)


class Keyring:
    """The keys of LABCI_SECRET_KEY, in order; the first is the one that encrypts."""

    def __init__(self, keys: list[Fernet]) -> None:
        if not keys:
            raise SecretKeyError(f"{SETTING} holds no key")
        self._fernet = MultiFernet(keys)

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, ciphertext: str, *, what: str) -> str:
        """The value of `ciphertext`; `what` names the secret in the error if no key opens it."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise SecretKeyError(cannot_open(what)) from exc

    def rotate(self, ciphertext: str, *, what: str) -> str:
        """`ciphertext` encrypted again with the first key (its value unchanged)."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretKeyError(cannot_open(what)) from exc


def cannot_open(what: str) -> str:
    return (
        f"{SETTING}: no key in it decrypts {what}; set the key it was stored with (while "
        "rotating, keep the old key after the new one until `labci secrets rotate-key` ran)"
    )


def load_keyring(secret_key: SecretStr | None) -> Keyring | None:
    """The keyring of the setting; None when it is unset or blank. A part that is not a
    Fernet key is a SecretKeyError naming its position (never its text)."""
    if secret_key is None:
        return None
    parts = [part.strip() for part in secret_key.get_secret_value().split(",")]
    if not any(parts):
        return None
    keys: list[Fernet] = []
    for position, part in enumerate(parts, start=1):
        if not part:
            raise SecretKeyError(f"{SETTING}: key {position} of {len(parts)} is empty")
        try:
            keys.append(Fernet(part))
        except ValueError:
            # `from None`: the decoder's own message may quote the text of the key.
            raise SecretKeyError(
                f"{SETTING}: key {position} of {len(parts)} is not a Fernet key (32 url-safe "
                "base64-encoded bytes); make one with `labci secrets generate-key`"
            ) from None
    return Keyring(keys)


def require_keyring(settings: Settings) -> Keyring:
    """The keyring, or NoSecretKey (a 409 through the API) when the setting is unset."""
    keyring = load_keyring(settings.secret_key)
    if keyring is None:
        raise NoSecretKey(NO_KEY)
    return keyring


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
