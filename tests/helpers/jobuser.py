"""A real unprivileged user for steps to run as (`LABCI_RUNNER_JOB_USER`), and directories
it can reach.

Switching users needs root, as it does for a runner: not being root skips on a laptop and
fails in CI (see `missing_service`). The user is made once per machine with
`useradd --system --no-create-home`, as a lab admin would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.services import missing_service

JOB_USER = "labci-job"


def job_user() -> pwd.struct_passwd:
    """The test job user, created when absent; root is needed to run steps as it."""
    if os.geteuid() != 0:
        missing_service("root", "steps run as another user only when the runner is root")
    try:
        return pwd.getpwnam(JOB_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        missing_service("root", "useradd is missing: cannot create the job user")
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", JOB_USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(JOB_USER)


@contextmanager
def reachable_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory in /tmp (pytest's own tmp_path sits under a 0700 directory, which a
    job user cannot enter); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))  # noqa: S108
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
