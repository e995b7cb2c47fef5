"""The web UI's front-end packages: the copies in labci_server/web/static/vendor are the
files of the packages server/web-assets/package-lock.json pins (installed by `npm ci`, as
scripts/test.sh does), and the server's wheel ships them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from helpers.services import missing_service
from helpers.uvtool import clean_env, find_uv, uv_offline_first

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "server/web-assets"
VENDOR = ROOT / "server/src/labci_server/web/static/vendor"


def entries() -> list[tuple[str, str]]:
    lines = (ASSETS / "vendor.txt").read_text().splitlines()
    return [(source, target) for source, target in (line.split() for line in lines if line)]


def test_each_vendored_file_is_the_locked_packages_own():
    modules = ASSETS / "node_modules"
    if not modules.is_dir():
        missing_service(
            "npm", "server/web-assets/node_modules: run npm ci --prefix server/web-assets"
        )
    lock = json.loads((ASSETS / "package-lock.json").read_text())
    wanted = json.loads((ASSETS / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():  # exact pins, and the lockfile agrees
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
        installed = json.loads((modules / name / "package.json").read_text())["version"]
        assert installed == version, f"{name}: node_modules has {installed}; run npm ci"
    differing = [
        target
        for source, target in entries()
        if (modules / source).read_bytes() != (VENDOR / target).read_bytes()
    ]
    assert differing == [], "stale copies: run scripts/vendor-assets.sh and commit them"
    copied = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()}
    assert copied == {target for _, target in entries()}  # nothing unlisted beside them


def test_the_server_wheel_ships_the_static_files(tmp_path):
    uv = find_uv()
    dist = tmp_path / "dist"
    build = ["build", "--package", "labci-server", "--wheel", "--out-dir", str(dist), "--quiet"]
    uv_offline_first(uv, build, cwd=ROOT, env=clean_env(tmp_path))
    (wheel,) = dist.glob("labci_server-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {f"labci_server/web/static/vendor/{target}" for _, target in entries()}
    assert shipped <= names
