"""Settings, runner.json and the CLI's messages for a person."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from labci_runner import cli
from labci_runner.agent import RunnerIdentity, load_identity, save_identity
from labci_runner.settings import Settings, runner_environment

ENV_NAMES = [
    "LABCI_LOG_FORMAT",
    "LABCI_RUNNER_METRICS_ADDRESS",
    "LABCI_SERVER_URL",
    "LABCI_RUNNER_TOKEN",
    "LABCI_REGISTRATION_TOKEN",
    "LABCI_REDIS_URL",
    "LABCI_RUNNER_LABELS",
    "LABCI_RUNNER_EXECUTOR",
    "LABCI_RUNNER_WORKDIR",
    "LABCI_RUNNER_NAME",
    "LABCI_RUNNER_SLOTS",
    "LABCI_RUNNER_HEARTBEAT_INTERVAL_S",
    "LABCI_RUNNER_POLL_DELAY_S",
    "LABCI_RUNNER_KILL_GRACE_S",
    "LABCI_RUNNER_DRAIN_GRACE_S",
    "LABCI_RUNNER_CACHE_DIR",
    "LABCI_RUNNER_CACHE_MAX_BYTES",
    "LABCI_RUNNER_DOCKER_HOST",
    "LABCI_RUNNER_PULL_POLICY",
    "LABCI_RUNNER_DEFAULT_IMAGE",
    "LABCI_RUNNER_CONTAINER_USER",
    "LABCI_RUNNER_CPUS",
    "LABCI_RUNNER_MEMORY",
    "LABCI_RUNNER_JOB_CPUS",
    "LABCI_RUNNER_JOB_MEMORY",
    "LABCI_RUNNER_PIDS_LIMIT",
    "LABCI_RUNNER_LOG_UPLOADS_IN_FLIGHT",
    "LABCI_RUNNER_MAX_LOG_BYTES",
    "LABCI_RUNNER_GPUS",
    "LABCI_RUNNER_JOB_USER",
    "LABCI_RUNNER_JOB_ENV",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_every_setting_is_documented_and_named() -> None:
    fields = Settings.model_fields
    assert all(field.description for field in fields.values())
    assert sorted(field.validation_alias for field in fields.values()) == sorted(ENV_NAMES)


def test_settings_read_the_stable_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCI_SERVER_URL", "https://labci.example")
    monkeypatch.setenv("LABCI_RUNNER_LABELS", "gpu, linux ,,a100")
    monkeypatch.setenv("LABCI_RUNNER_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("LABCI_RUNNER_SLOTS", "3")
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings()
    assert settings.server_url == "https://labci.example"
    assert settings.labels == ["gpu", "linux", "a100"]
    assert settings.slots == 3
    assert settings.runner_token is not None
    assert settings.runner_token.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t" not in repr(settings)
    assert settings.workdir == tmp_path / ".labci-runner"
    assert Settings().labels == ["gpu", "linux", "a100"]


def test_git_env_drops_runner_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCI_RUNNER_TOKEN", "secret")
    monkeypatch.setenv("LABCI_REGISTRATION_TOKEN", "secret")
    monkeypatch.setenv("KEEP_ME", "yes")
    env = runner_environment()
    assert env["KEEP_ME"] == "yes"
    assert "LABCI_RUNNER_TOKEN" not in env
    assert "LABCI_REGISTRATION_TOKEN" not in env


def test_runner_json_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "workdir" / "runner.json"
    identity = RunnerIdentity("https://labci.example", 4, "tok", "labci:runner:4")
    save_identity(path, identity)
    save_identity(path, identity)  # re-registering overwrites
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_identity(path) == identity
    assert load_identity(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["register"], {}, "labci-runner: LABCI_SERVER_URL is not set\n"),
        (
            ["register", "--server-url", "http://127.0.0.1:9"],
            {},
            "labci-runner: LABCI_REGISTRATION_TOKEN is not set (or pass --token)\n",
        ),
        (["start"], {}, "labci-runner: not registered: no {workdir}/runner.json; run "),
    ],
    ids=["no-server-url", "no-token", "not-registered"],
)
def test_cli_explains_missing_settings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.setenv("LABCI_RUNNER_WORKDIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(message.format(workdir=tmp_path))
    assert "Traceback" not in err


def test_cli_refuses_root_in_containers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCI_RUNNER_CONTAINER_USER", "0:0")
    with pytest.raises(SystemExit) as caught:
        cli.main(["start"])
    assert str(caught.value) == (
        "labci-runner: LABCI_RUNNER_CONTAINER_USER: Value error, steps never run as root in"
        " containers"
    )


def test_cli_names_an_invalid_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCI_RUNNER_SLOTS", "many")
    with pytest.raises(SystemExit) as caught:
        cli.main(["start"])
    assert str(caught.value).startswith("labci-runner: LABCI_RUNNER_SLOTS: Input should be")


def test_cache_settings_take_sizes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABCI_RUNNER_WORKDIR", str(tmp_path))
    monkeypatch.setenv("LABCI_RUNNER_CACHE_MAX_BYTES", "2G")
    settings = Settings()
    assert settings.cache_max_bytes == 2 * 1024**3
    assert settings.cache_root == tmp_path / "cache"


@pytest.mark.parametrize("user", ["0", "0:0", "root", "1000:x"], ids=str)
def test_steps_never_run_as_root(monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    monkeypatch.setenv("LABCI_RUNNER_CONTAINER_USER", user)
    with pytest.raises(ValueError, match="root|numeric"):
        Settings()
