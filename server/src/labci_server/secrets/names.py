"""What a secret may be called and hold; GitHub's rules where it has them.

- A name is `[A-Za-z_][A-Za-z0-9_]*`, at most 100 characters, case-insensitive (kept in
  upper case, as `${{ secrets.x }}` finds `X` too), and does not start with `LABCI_` or
  `GITHUB_` (labci's and GitHub's own variables).
- A value has at least `MIN_SECRET_LENGTH` characters besides surrounding whitespace: the
  runner replaces every occurrence of a value in the logs, and a short value (`1234`, or a
  word) would be both guessable from the gaps it leaves and redacted all over unrelated
  output. At most `MAX_SECRET_BYTES` (48 KiB, GitHub's limit) in UTF-8, no NUL character.
- At most `MAX_SECRETS_PER_SCOPE` secrets per repository, and on the server.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import BadRequest

MIN_SECRET_LENGTH: Final = 8
MAX_SECRET_BYTES: Final = 48 * 1024
MAX_NAME_CHARS: Final = 100
MAX_SECRETS_PER_SCOPE: Final = 100
RESERVED_PREFIXES: Final = ("LABCI_", "GITHUB_")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def secret_name(given: str) -> str:
    """`given` as a secret's stored name (upper case), or BadRequest saying what is wrong.

    The message quotes the name only when it is short and printable."""
    shown = repr(given) if len(given) <= MAX_NAME_CHARS and given.isprintable() else "the name"
    if not given:
        raise BadRequest("a secret needs a name")
    if len(given) > MAX_NAME_CHARS:
        raise BadRequest(f"a secret's name has at most {MAX_NAME_CHARS} characters")
    if not _NAME.fullmatch(given):
        raise BadRequest(
            f"{shown} is not a secret name: use letters, digits and _, not starting with a digit"
        )
    name = given.upper()
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise BadRequest(f"{shown}: names starting with {prefix} are reserved")
    return name


def check_value(value: str) -> None:
    """BadRequest unless `value` can be stored and redacted; never quotes the value."""
    if "\x00" in value:
        raise BadRequest("a secret's value may not contain a NUL character")
    if len(value.strip()) < MIN_SECRET_LENGTH:
        raise BadRequest(
            f"a secret's value needs at least {MIN_SECRET_LENGTH} characters (besides surrounding"
            " whitespace): shorter ones cannot be redacted from logs safely"
        )
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise BadRequest("a secret's value is not valid Unicode (a lone surrogate)") from None
    if size > MAX_SECRET_BYTES:
        raise BadRequest(
            f"a secret's value may be at most {MAX_SECRET_BYTES // 1024} KiB (UTF-8); store a "
            "larger one encrypted in the repository, with its key as the secret"
        )
