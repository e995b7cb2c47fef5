"""Test images built on the machine, with no registry: a root filesystem holding Debian's
statically linked busybox, imported into the engine (`docker import`).

`labci-test/busybox:1` has a non-root user `labci` (uid 1000) and a world-writable /tmp,
like the images labs use; `labci-test/busybox-root:1` has no user but root.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from dataclasses import dataclass

import docker

IMAGE = "labci-test/busybox:1"
ROOT_ONLY_IMAGE = "labci-test/busybox-root:1"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nlabci:x:1000:1000:labci:/home/labci:/bin/sh\n"
GROUP = "root:x:0:\nlabci:x:1000:\n"


@dataclass(frozen=True)
class TestImages:
    busybox: str = IMAGE
    root_only: str = ROOT_ONLY_IMAGE

    __test__ = False


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    mode: int = 0o755,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.type = kind
    info.linkname = link
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def rootfs(*, with_user: bool) -> bytes:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox is missing: install Debian's busybox-static")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder in ("bin", "etc", "home", "root", "tmp", "usr", "usr/bin"):
            mode = 0o1777 if folder == "tmp" else 0o755
            _add(tar, folder, mode=mode, kind=tarfile.DIRTYPE)
        with open(busybox, "rb") as handle:
            _add(tar, "bin/busybox", data=handle.read())
        for applet in applets.stdout.split():
            if applet != "busybox":
                _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        passwd = PASSWD if with_user else PASSWD.splitlines()[0] + "\n"
        group = GROUP if with_user else GROUP.splitlines()[0] + "\n"
        _add(tar, "etc/passwd", data=passwd.encode(), mode=0o644)
        _add(tar, "etc/group", data=group.encode(), mode=0o644)
        if with_user:
            _add(tar, "home/labci", mode=0o755, kind=tarfile.DIRTYPE)
    return buffer.getvalue()


def build_test_images(client: docker.DockerClient) -> TestImages:
    """Import both images (cheap: a few MB); existing ones are replaced."""
    for name, with_user in ((IMAGE, True), (ROOT_ONLY_IMAGE, False)):
        repository, tag = name.rsplit(":", 1)
        client.api.import_image_from_data(
            rootfs(with_user=with_user), repository=repository, tag=tag
        )
    return TestImages()
