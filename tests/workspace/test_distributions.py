"""The runner distribution installs without FastAPI or SQL libraries (resolved from uv.lock)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from helpers.distributions import SERVER_ONLY

ROOT = Path(__file__).resolve().parents[2]


def closure(package: str) -> set[str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    deps = {p["name"]: [d["name"] for d in p.get("dependencies", [])] for p in lock["package"]}
    seen, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(deps.get(name, []))
    return seen


def test_runner_installs_without_server_libraries():
    runner = closure("labci-runner")
    assert "arq" in runner
    assert "labci-spec" in runner
    assert runner & SERVER_ONLY == set()


def test_spec_depends_on_parsing_libraries_only():
    assert closure("labci-spec") - {"labci-spec"} <= {
        "pydantic",
        "pydantic-core",
        "pyyaml",
        "typing-extensions",
        "typing-inspection",
        "annotated-types",
    }


def test_server_has_what_it_needs():
    assert {"fastapi", "sqlmodel", "alembic", "arq", "gidgethub"} <= closure("labci-server")
