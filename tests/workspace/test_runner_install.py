"""The runner installs alone (issue 12): its wheel and labci_spec's, built with `uv build`,
installed with `uv tool install` into a tool directory of their own with nothing of the
workspace's virtual environment in reach; `labci-runner` then runs, every module of it
imports, and neither labci_server nor a server library came along.

uv comes from `uv run` (which sets $UV), PATH, or the project's .venv-tools (see
scripts/bootstrap.sh). Dependencies come from uv's cache when it holds them (`--offline`,
about 2 s) and from PyPI otherwise, pinned to uv.lock's versions either way.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from helpers.distributions import SERVER_ONLY
from helpers.uvtool import clean_env, find_uv, run, uv_offline_first

ROOT = Path(__file__).resolve().parents[2]

# Run by the installed runner's own Python: what it imports and what is installed beside it.
INSPECT = """
import importlib, importlib.metadata as md, importlib.util, json, pkgutil, sys
import labci_runner
modules = [m.name for m in pkgutil.walk_packages(labci_runner.__path__, "labci_runner.")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({
    "runner_file": labci_runner.__file__,
    "modules": len(modules),
    "distributions": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "labci_server": importlib.util.find_spec("labci_server") is not None,
    "sys_path": sys.path,
}))
"""


def test_the_runner_wheel_installs_alone_with_uv_tool(tmp_path):
    uv = find_uv()
    env = clean_env(tmp_path)
    dist = tmp_path / "dist"
    for package in ("labci-spec", "labci-runner"):
        build = ["build", "--package", package, "--wheel", "--out-dir", str(dist), "--quiet"]
        uv_offline_first(uv, build, cwd=ROOT, env=env)
    (runner_wheel,) = dist.glob("labci_runner-*.whl")
    (spec_wheel,) = dist.glob("labci_spec-*.whl")

    constraints = tmp_path / "constraints.txt"
    export = [uv, "export", "--package", "labci-runner", "--frozen", "--no-dev", "--no-hashes"]
    export += ["--no-emit-workspace", "--quiet", "--output-file", str(constraints)]
    assert run(export, cwd=ROOT, env=env).returncode == 0

    base_python = Path(sys.base_prefix) / "bin" / "python3"
    install = ["tool", "install", "--python", str(base_python), str(runner_wheel)]
    install += ["--with", str(spec_wheel), "--constraints", str(constraints)]
    uv_offline_first(uv, install, cwd=tmp_path, env=env)

    runner = tmp_path / "bin" / "labci-runner"
    version = tomllib.loads((ROOT / "runner/pyproject.toml").read_text())["project"]["version"]
    shown = run([str(runner), "--version"], cwd=tmp_path, env=env)
    assert shown.stdout.strip() == f"labci-runner {version}"
    health = run(
        [str(runner), "health"], cwd=tmp_path, env={**env, "LABCI_RUNNER_WORKDIR": str(tmp_path)}
    )
    assert health.returncode == 1
    assert f"no heartbeat recorded in {tmp_path / 'health.json'}" in health.stdout + health.stderr

    python = tmp_path / "tools" / "labci-runner" / "bin" / "python"
    inspected = run([str(python), "-c", INSPECT], cwd=tmp_path, env=env)
    assert inspected.returncode == 0, inspected.stderr
    found = json.loads(inspected.stdout)
    assert found["runner_file"].startswith(str(tmp_path / "tools"))
    assert found["modules"] >= 20
    assert {"labci-runner", "labci-spec", "arq", "docker"} <= set(found["distributions"])
    assert set(found["distributions"]) & SERVER_ONLY == set()
    assert found["labci_server"] is False
    assert not [p for p in found["sys_path"] if p.startswith(str(ROOT))]
