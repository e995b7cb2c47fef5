"""`LABCI_X_FILE=/run/secrets/x` (Docker and Kubernetes secrets) gives setting x the file's
contents, on the server and on the runner; with both set, or an unreadable file, the
program stops naming the variable (and printing no value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labci_runner.settings import Settings as RunnerSettings
from labci_server.errors import ConfigError
from labci_server.settings import FILE_SETTINGS
from labci_server.settings import Settings as ServerSettings


@pytest.mark.parametrize("name", FILE_SETTINGS)
def test_server_reads_each_secret_from_its_file(name, tmp_path: Path, monkeypatch) -> None:
    variable = f"LABCI_{name.upper()}"
    monkeypatch.delenv(variable, raising=False)
    (tmp_path / "secret").write_text("value-from-file\n")
    monkeypatch.setenv(f"{variable}_FILE", str(tmp_path / "secret"))
    companions = {
        "github_private_key": "GITHUB_APP_ID",
        "github_oauth_client_secret": "GITHUB_OAUTH_CLIENT_ID",
    }
    if name in companions:  # these go with an id
        monkeypatch.setenv(f"LABCI_{companions[name]}", "12")
    value = getattr(ServerSettings(), name)
    assert (value if isinstance(value, str) else value.get_secret_value()) == "value-from-file"


def test_server_refuses_a_variable_and_its_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "url").write_text("postgresql://labci:from-file@db/labci")
    monkeypatch.setenv("LABCI_DATABASE_URL", "postgresql://labci:from-env@db/labci")
    monkeypatch.setenv("LABCI_DATABASE_URL_FILE", str(tmp_path / "url"))
    with pytest.raises(ConfigError) as caught:
        ServerSettings()
    assert (
        str(caught.value) == "LABCI_DATABASE_URL and LABCI_DATABASE_URL_FILE are both set; keep one"
    )


def test_server_names_an_unreadable_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LABCI_WEBHOOK_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as caught:
        ServerSettings()
    assert str(caught.value) == (
        f"LABCI_WEBHOOK_SECRET_FILE: cannot read {tmp_path / 'missing'}: No such file or directory"
    )


def test_a_pem_file_keeps_its_lines(tmp_path: Path, monkeypatch) -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"
    (tmp_path / "key.pem").write_text(pem)
    monkeypatch.setenv("LABCI_GITHUB_APP_ID", "12")
    monkeypatch.setenv("LABCI_GITHUB_PRIVATE_KEY_FILE", str(tmp_path / "key.pem"))
    key = ServerSettings().github_private_key
    assert key is not None
    assert key.get_secret_value() == pem.removesuffix("\n")


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("LABCI_RUNNER_TOKEN", "runner_token"),
        ("LABCI_REGISTRATION_TOKEN", "registration_token"),
        ("LABCI_REDIS_URL", "redis_url"),
    ],
)
def test_runner_reads_its_secrets_from_files(variable, field, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(variable, raising=False)
    (tmp_path / "secret").write_text("redis://runner:pw@redis:6379/0\n")
    monkeypatch.setenv(f"{variable}_FILE", str(tmp_path / "secret"))
    value = getattr(RunnerSettings(), field)
    text = value if isinstance(value, str) else value.get_secret_value()
    assert text == "redis://runner:pw@redis:6379/0"


def test_runner_refuses_a_variable_and_its_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "token").write_text("t1")
    monkeypatch.setenv("LABCI_RUNNER_TOKEN", "t2")
    monkeypatch.setenv("LABCI_RUNNER_TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(
        ValueError, match="LABCI_RUNNER_TOKEN and LABCI_RUNNER_TOKEN_FILE are both set"
    ):
        RunnerSettings()
