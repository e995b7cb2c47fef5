"""`labci secrets`: a repository's or the server's secrets, and their encryption key.

`set`, `list` and `delete` go through the API with your personal API token (`labci login`):
a repository's secrets need admin permission on it, the server's (`--server`) a server
administrator. A value is read from standard input, never from the command line (where
`ps` and shell history would keep it), and never printed.

`rotate-key` runs on the server's machine against the database, like `labci users`:
it re-encrypts every secret with the first key of LABCI_SECRET_KEY. `generate-key` prints
a new key.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any
from urllib.parse import quote

from .errors import BadRequest
from .settings import Settings

URL_HELP = "server URL (default LABCI_PUBLIC_URL)"
SETTING = "LABCI_SECRET_KEY"
# The secrets package (SQL, cryptography, the spec) is imported by the commands that use it:
# every `labci` command builds this parser.


def secrets_path(repo: str | None, *, server_wide: bool) -> tuple[str, str]:
    """The API path of the secrets of OWNER/REPO (or the server), and how to name them."""
    if server_wide:
        if repo is not None:
            raise BadRequest("give OWNER/REPO or --server, not both")
        return "/api/v1/secrets", "the server"
    if repo is None:
        raise BadRequest("give OWNER/REPO (or --server for server-wide secrets)")
    # A local bare repository is named by the last two parts of its path.
    parts = [part for part in repo.strip("/").split("/") if part]
    owner_name = parts[-2:] if repo.startswith("/") else parts
    if len(owner_name) != 2:
        raise BadRequest(f"{repo!r}: expected OWNER/REPO or a bare repository's path")
    owner, name = owner_name
    return f"/api/v1/repos/{quote(owner, safe='')}/{quote(name, safe='')}/secrets", repo


def read_value(name: str) -> str:
    """The value from standard input: typed without echo, or piped (one trailing newline
    dropped). An empty value typed at the prompt is refused here, before anything is sent."""
    from .secrets.names import MAX_SECRET_BYTES

    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name} (not shown): ")
        if not value:
            raise BadRequest("no value typed; nothing was sent")
        return value
    value = sys.stdin.read(MAX_SECRET_BYTES + 3)
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    return value


def _scope_args(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(OWNER/REPO, NAME) from the positionals of `set`/`delete` (one of them with --server)."""
    words = [w for w in (args.first, args.second) if w is not None]
    if args.server_wide:
        if len(words) != 1:
            raise BadRequest("with --server, give only the secret's NAME")
        return None, words[0]
    if len(words) != 2:
        raise BadRequest("give OWNER/REPO and the secret's NAME (or --server NAME)")
    return words[0], words[1]


def cmd_secrets_set(settings: Settings, args: argparse.Namespace) -> int:
    from .client import api_call
    from .secrets.names import check_value, secret_name

    repo, given = _scope_args(args)
    path, label = secrets_path(repo, server_wide=args.server_wide)
    name = secret_name(given or "")
    value = read_value(name)
    check_value(value)  # the server checks again; this saves sending a value it refuses
    stored = api_call(settings, args.url, "PUT", f"{path}/{name}", {"value": value})
    print(f"secret {stored['name']} of {label} {'created' if stored['created'] else 'updated'}")
    return 0


def cmd_secrets_list(settings: Settings, args: argparse.Namespace) -> int:
    from .client import api_call

    path, label = secrets_path(args.repo, server_wide=args.server_wide)
    listed: list[dict[str, Any]] = api_call(settings, args.url, "GET", path).get("items", [])
    if not listed:
        print(f"no secrets in {label}")
        return 0
    width = max(len(item["name"]) for item in listed)
    for item in listed:
        by = f" by {item['updated_by']}" if item.get("updated_by") else ""
        print(f"{item['name']:<{width}}  updated {_when(item['updated_at'])}{by}")
    return 0


def cmd_secrets_delete(settings: Settings, args: argparse.Namespace) -> int:
    from .client import api_call
    from .secrets.names import secret_name

    repo, given = _scope_args(args)
    path, label = secrets_path(repo, server_wide=args.server_wide)
    name = secret_name(given or "")
    api_call(settings, args.url, "DELETE", f"{path}/{name}")
    print(f"secret {name} of {label} deleted")
    return 0


def cmd_secrets_rotate_key(settings: Settings, _args: argparse.Namespace) -> int:
    from .cli_people import on_database
    from .secrets.store import rotate_key

    count = on_database(settings, lambda sessions: rotate_key(settings, sessions))
    print(
        f"{count} secret(s) re-encrypted with the first key of {SETTING}; the other keys "
        "may be dropped from it now"
    )
    return 0


def cmd_secrets_generate_key(_settings: Settings, _args: argparse.Namespace) -> int:
    from .secrets.keys import generate_key

    print(generate_key())
    return 0


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def add_secrets_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secrets = sub.add_parser(
        "secrets", help="secrets of a repository or of the server (values never shown)"
    ).add_subparsers(dest="secrets_command", required=True)
    put = secrets.add_parser(
        "set",
        help="create or replace a secret; its value is read from standard input",
        usage="labci secrets set [--url URL] (OWNER/REPO NAME | --server NAME) < value",
    )
    delete = secrets.add_parser(
        "delete",
        help="delete a secret",
        usage="labci secrets delete [--url URL] (OWNER/REPO NAME | --server NAME)",
    )
    for parser, func in ((put, cmd_secrets_set), (delete, cmd_secrets_delete)):
        parser.add_argument("first", metavar="OWNER/REPO", nargs="?")
        parser.add_argument("second", metavar="NAME", nargs="?")
        parser.set_defaults(func=func)
    listing = secrets.add_parser("list", help="names of the secrets, when set and by whom")
    listing.add_argument("repo", metavar="OWNER/REPO", nargs="?")
    listing.set_defaults(func=cmd_secrets_list)
    for parser in (put, delete, listing):
        parser.add_argument(
            "--server", dest="server_wide", action="store_true", help="the server-wide secrets"
        )
        parser.add_argument("--url", help=URL_HELP)
    secrets.add_parser(
        "rotate-key",
        help=f"(on the server) re-encrypt every secret with the first key of {SETTING}",
    ).set_defaults(func=cmd_secrets_rotate_key)
    secrets.add_parser("generate-key", help=f"print a new key for {SETTING}").set_defaults(
        func=cmd_secrets_generate_key
    )
