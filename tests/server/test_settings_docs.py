"""Settings are built once in main() and documented: a field without a description, or
missing from the README, fails here; so does os.environ outside settings.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labci_runner.settings import Settings as RunnerSettings
from labci_server.settings import Settings as ServerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SOURCES = sorted([*ROOT.glob("server/src/**/*.py"), *ROOT.glob("runner/src/**/*.py")])


def server_variables() -> dict[str, str | None]:
    return {
        f"LABCI_{name.upper()}": f.description for name, f in ServerSettings.model_fields.items()
    }


def runner_variables() -> dict[str, str | None]:
    return {str(f.validation_alias): f.description for f in RunnerSettings.model_fields.values()}


@pytest.mark.parametrize("variable", sorted(server_variables() | runner_variables()))
def test_every_setting_is_described_and_in_the_readme(variable):
    description = (server_variables() | runner_variables())[variable]
    assert description
    assert re.search(rf"\b{variable}\b", README)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_environment_is_read_only_in_settings_modules(path):
    text = path.read_text()
    if path.name != "settings.py":
        assert "os.environ" not in text
        assert "os.getenv" not in text
    module_level = [line for line in text.splitlines() if re.match(r"^\w+\s*=\s*Settings\(", line)]
    assert module_level == []
