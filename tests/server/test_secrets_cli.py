"""`labci secrets` without a server: how OWNER/REPO and --server become API paths, how a value
is read (stdin, one trailing newline dropped; an empty value typed at a real terminal is
refused before anything is sent), and the key `labci dev` keeps for itself."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import stat
import subprocess
import sys
import termios

import pytest

from helpers.server import test_settings
from labci_server.cli_secrets import read_value, secrets_path
from labci_server.dev import dev_settings
from labci_server.errors import BadRequest
from labci_server.secrets import load_keyring

HANG_GUARD_S = 60.0


@pytest.mark.parametrize(
    ("repo", "server_wide", "path"),
    [
        ("octo/exp", False, "/api/v1/repos/octo/exp/secrets"),
        ("/srv/git/team/model.git", False, "/api/v1/repos/team/model.git/secrets"),
        ("odd name/a#b", False, "/api/v1/repos/odd%20name/a%23b/secrets"),
        (None, True, "/api/v1/secrets"),
    ],
    ids=["owner-repo", "bare-repository-path", "quoted", "server"],
)
def test_where_secrets_are_sent(repo, server_wide, path):
    assert secrets_path(repo, server_wide=server_wide)[0] == path


@pytest.mark.parametrize(
    ("repo", "server_wide", "message"),
    [
        ("octo/exp", True, "give OWNER/REPO or --server, not both"),
        (None, False, "give OWNER/REPO (or --server"),
        ("just-a-name", False, "expected OWNER/REPO or a bare repository's path"),
        ("a/b/c", False, "expected OWNER/REPO"),
    ],
    ids=["both", "neither", "no-owner", "three-parts"],
)
def test_a_wrong_target_is_explained(repo, server_wide, message):
    with pytest.raises(BadRequest, match=re.escape(message)):
        secrets_path(repo, server_wide=server_wide)


@pytest.mark.parametrize(
    ("piped", "value"),
    [
        ("value-from-a-file\n", "value-from-a-file"),
        ("windows line\r\n", "windows line"),
        ("two newlines kept one\n\n", "two newlines kept one\n"),
        (
            "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
            "-----BEGIN KEY-----\nabc\n-----END KEY-----",
        ),
        ("no newline", "no newline"),
    ],
    ids=["newline", "crlf", "two-newlines", "multi-line", "none"],
)
def test_a_piped_value_loses_one_trailing_newline(monkeypatch, piped, value):
    monkeypatch.setattr(sys, "stdin", io.StringIO(piped))
    assert read_value("X") == value


def test_an_empty_value_typed_at_a_terminal_is_refused_before_sending(tmp_path):
    primary, secondary = pty.openpty()

    def with_controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(secondary, termios.TIOCSCTTY, 0)

    env = {
        **os.environ,
        # Nothing listens there: had the command sent anything, it would say so differently.
        "LABCI_PUBLIC_URL": "http://127.0.0.1:9",
        "LABCI_API_TOKEN": "labci_pat_never_used",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "labci_server.cli", "secrets", "set", "--server", "TYPED"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        preexec_fn=with_controlling_terminal,
        env=env,
        cwd=tmp_path,
    )
    os.close(secondary)
    seen = read_terminal(primary, until=b"(not shown): ")
    os.write(primary, b"\n")
    seen += read_terminal(primary, until=None)
    os.close(primary)
    assert proc.wait(timeout=HANG_GUARD_S) == 2
    text = seen.decode(errors="replace")
    assert "value of TYPED (not shown): " in text
    assert "labci: error: no value typed; nothing was sent" in text


def read_terminal(fd: int, *, until: bytes | None) -> bytes:
    """What the terminal shows, until `until` appears (None: until the program closes it)."""
    seen = b""
    while until is None or until not in seen:
        ready, _, _ = select.select([fd], [], [], HANG_GUARD_S)
        if not ready:
            pytest.fail(f"the terminal showed nothing new; so far: {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the program closed its terminal
            chunk = b""
        if not chunk:
            if until is None:
                return seen
            pytest.fail(f"the program ended before showing {until!r}: {seen!r}")
        seen += chunk
    return seen


def test_dev_makes_a_key_once_readable_by_its_owner_only(tmp_path, database_url, redis_url):
    unset = test_settings(database_url, redis_url, secret_key=None)
    first = dev_settings(unset, tmp_path)
    kept = tmp_path / "secret-key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert load_keyring(first.secret_key) is not None
    again = dev_settings(unset, tmp_path)
    assert again.secret_key.get_secret_value() == first.secret_key.get_secret_value()
    given = test_settings(database_url, redis_url)
    other = tmp_path / "other"
    assert dev_settings(given, other).secret_key == given.secret_key
    assert not (other / "secret-key").exists()
