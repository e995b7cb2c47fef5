"""Who host steps run as, and handing a job's directories over to that user.

A runner keeps credentials on disk (runner.json holds its token; the git mirrors and the
cache hold other repositories' code). A step that runs as the runner's own user can read
them all, so a runner running as root runs the process executor's steps as
`LABCI_RUNNER_JOB_USER` instead: an unprivileged user with its primary group only. The
runner's workdir is then traversable but not readable (0711), its jobs directory too; its
mirrors and cache are 0700 and runner.json is 0600. A job's own directories (checkout,
output, scratch with HOME and TMPDIR) are handed over to the job user, 0700.

Handing over never follows a link, and never takes an inode the job shares with the
runner: the checkout's git objects are hard links to the mirror's files (see
`checkout.py`), and a job owning one could rewrite the mirror every later job checks out
from. Those stay the runner's, and readable.

Blocking file work: call these from a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labci_runner.errors import ConfigError

PROTECTED_HARDLINKS = Path("/proc/sys/fs/protected_hardlinks")


@dataclass(frozen=True)
class JobUser:
    """The user host steps run as: name, uid and primary gid."""

    name: str
    uid: int
    gid: int


def resolve_job_user(spec: str) -> JobUser:
    """LABCI_RUNNER_JOB_USER (a name or a uid) as a user of this machine, never root."""
    try:
        entry = pwd.getpwuid(int(spec)) if spec.isdigit() else pwd.getpwnam(spec)
    except KeyError:
        raise ConfigError(f"LABCI_RUNNER_JOB_USER: no user {spec!r} on this machine") from None
    if entry.pw_uid == 0:
        raise ConfigError("LABCI_RUNNER_JOB_USER: steps must not run as root; name another user")
    return JobUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def check_can_switch(user: JobUser) -> None:
    """Switching users needs root; and with protected hard links off, a step could link the
    runner's token into its output, where the runner (root) would read it."""
    if os.geteuid() != 0:
        raise ConfigError(
            f"LABCI_RUNNER_JOB_USER={user.name}: the runner must run as root to run steps as"
            " another user"
        )
    try:
        protected = PROTECTED_HARDLINKS.read_text().strip() == "1"
    except OSError:
        protected = True  # not Linux's /proc: nothing to check
    if not protected:
        raise ConfigError(
            "LABCI_RUNNER_JOB_USER needs fs.protected_hardlinks=1 (sysctl): without it a step"
            " can hard-link the runner's files into its output"
        )


def own_user_name() -> str:
    """The name of the user this process runs as (its uid when it has none)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def unreachable_ancestor(path: Path, user: JobUser) -> Path | None:
    """The first directory from / down to `path` that `user` (primary group only) cannot
    enter, or None when it can reach `path`."""
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def hand_over(tops: Iterable[Path], uid: int, gid: int, *, top_mode: int | None = None) -> None:
    """Give `uid:gid` each directory of `tops` and everything in it (see the module
    docstring for what stays the runner's); `top_mode` sets each top's mode."""
    for top in tops:
        os.chown(top, uid, gid, follow_symlinks=False)
        if top_mode is not None:
            os.chmod(top, top_mode)
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                _hand_over_one(os.path.join(folder, name), uid, gid)


def _hand_over_one(path: str, uid: int, gid: int) -> None:
    info = os.lstat(path)
    if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
        # Shared with the mirror (a hard-linked git object): readable, never given away.
        if info.st_mode & 0o444 != 0o444:
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o444)
        return
    os.chown(path, uid, gid, follow_symlinks=False)
