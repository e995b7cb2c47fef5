"""A job's environment is an allow-list (D11): a step sees what the table in
`executors.job_env` names and nothing else of the runner's environment — not its token,
not a server's secrets handed to the same machine — on the host and in a container."""

from __future__ import annotations

import pytest
from runner_kit import JobDirs, Recorder, make_context, make_job

from labci_runner import cli
from labci_runner.executors.container_config import ContainerDefaults
from labci_runner.executors.docker import DockerExecutor, DockerSettings
from labci_runner.executors.engine import DockerEngine
from labci_runner.executors.job_env import SAFE_PATH
from labci_runner.executors.job_user import own_user_name
from labci_runner.executors.process import ProcessExecutor
from labci_runner.logs import LogSink
from labci_runner.settings import Settings

SECRETS = {
    "LABCI_RUNNER_TOKEN": "labcirun_token_value",
    "LABCI_REGISTRATION_TOKEN": "labcireg_token_value",
    "LABCI_REDIS_URL": "redis://:redis-password@redis:6379/0",
    "LABCI_WEBHOOK_SECRET": "webhook-secret-value",
    "LABCI_DATABASE_URL": "postgresql://labci:database-password@db/labci",
    "LABCI_GITHUB_TOKEN": "ghp_github_token_value",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
}
RUNNER_ENV = {
    **SECRETS,
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TZ": "Europe/Paris",
    "HF_HOME": "/srv/hf",
    "LABCI_RUNNER_WORKDIR": "/var/lib/labci-runner",
    "LABCI_SERVER_URL": "https://labci.example",
    "DOCKER_HOST": "unix:///run/docker.sock",
    "HOME": "/root",
    "USER": "root",
    "SSH_AUTH_SOCK": "/run/ssh-agent.sock",
}
# What the server sends: the job's LABCI_* values; anything else is not passed on.
SERVER_ENV = {"LABCI_JOB_ID": "7", "LABCI_ATTEMPT": "1", "LABCI_BRANCH": "main", "C": "server"}
# What the shell itself adds to its children's environment.
SHELL_ADDED = {"PWD", "SHLVL", "_", "OLDPWD"}
DUMP_ENV = 'env > "$LABCI_OUTPUT/env.txt"; touch "$HOME/home-ok" "$TMPDIR/tmp-ok"'


def read_env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_a_host_step_gets_the_allow_list_and_nothing_else(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    executor = ProcessExecutor(base_env=RUNNER_ENV, pass_env=["HF_HOME"], grace_s=0.5)
    step = {"run": DUMP_ENV, "env": {"B": "step", "C": "step"}}
    job = make_job(step, env={"A": "job", "B": "job"})
    ctx = make_context(job_dirs, sink, recorder, server_env=SERVER_ENV)
    outcome = await executor.run(job, ctx)
    await sink.close()
    assert outcome.outcome == "success"
    dumped = (job_dirs.output / "env.txt").read_text()
    env = read_env(dumped)
    assert set(env) - SHELL_ADDED == {
        "PATH", "LANG", "TZ", "HF_HOME",
        "HOME", "TMPDIR", "USER", "LOGNAME",
        "A", "B", "C",
        "LABCI_JOB_ID", "LABCI_ATTEMPT", "LABCI_BRANCH",
        "LABCI_OUTPUT", "LABCI_WORKSPACE", "CI", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    }  # fmt: skip
    for value in SECRETS.values():
        assert value not in dumped
        assert value not in "\n".join(recorder.texts())
    assert (env["A"], env["B"], env["C"]) == ("job", "step", "step")
    assert (env["PATH"], env["LANG"], env["TZ"], env["HF_HOME"]) == (
        RUNNER_ENV["PATH"], "C.UTF-8", "Europe/Paris", "/srv/hf"
    )  # fmt: skip
    # HOME and TMPDIR are the job's own, and usable.
    assert env["HOME"] == str(job_dirs.scratch / "home")
    assert env["TMPDIR"] == str(job_dirs.scratch / "tmp")
    assert (job_dirs.scratch / "home" / "home-ok").is_file()
    assert (job_dirs.scratch / "tmp" / "tmp-ok").is_file()
    assert env["USER"] == env["LOGNAME"] == own_user_name()
    assert (env["LABCI_JOB_ID"], env["CI"]) == ("7", "true")
    assert env["LABCI_OUTPUT"] == str(job_dirs.output)
    assert env["LABCI_WORKSPACE"] == str(job_dirs.workspace)
    assert (env["CUDA_VISIBLE_DEVICES"], env["NVIDIA_VISIBLE_DEVICES"]) == ("", "void")


async def test_a_runner_without_path_gives_steps_a_safe_one(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    executor = ProcessExecutor(base_env={}, grace_s=0.5)
    outcome = await executor.run(make_job(DUMP_ENV), make_context(job_dirs, sink, recorder))
    assert outcome.outcome == "success"
    assert read_env((job_dirs.output / "env.txt").read_text())["PATH"] == SAFE_PATH


async def test_credentials_listed_for_jobs_are_dropped_even_past_the_settings(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    """The executor applies the allow-list itself, whoever built its list of names."""
    names = ["LABCI_RUNNER_TOKEN", "LABCI_WEBHOOK_SECRET", "DOCKER_HOST", "HOME", "SSH_AUTH_SOCK"]
    executor = ProcessExecutor(base_env=RUNNER_ENV, pass_env=names, grace_s=0.5)
    outcome = await executor.run(make_job(DUMP_ENV), make_context(job_dirs, sink, recorder))
    assert outcome.outcome == "success"
    env = read_env((job_dirs.output / "env.txt").read_text())
    assert env["SSH_AUTH_SOCK"] == "/run/ssh-agent.sock"  # listed, and not a credential name
    assert not {"LABCI_RUNNER_TOKEN", "LABCI_WEBHOOK_SECRET", "DOCKER_HOST"} & set(env)
    assert env["HOME"] == str(job_dirs.scratch / "home")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "HF_HOME,LABCI_RUNNER_TOKEN",
            "LABCI_RUNNER_TOKEN: LABCI_* names are the runner's credentials and settings",
        ),
        ("LABCI_REDIS_URL", "LABCI_REDIS_URL: LABCI_* names are the runner's credentials"),
        ("labci_webhook_secret", "labci_webhook_secret: LABCI_* names are the runner's"),
        ("DOCKER_HOST", "DOCKER_HOST: DOCKER_* names lead to the runner's Docker engine"),
        ("HOME", "HOME: the runner sets it for every job"),
        ("HTTP-PROXY", "HTTP-PROXY: not an environment variable name"),
    ],
    ids=["runner-token", "redis-url", "lowercase", "docker", "home", "not-a-name"],
)
def test_credentials_cannot_be_passed_to_jobs(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("LABCI_RUNNER_JOB_ENV", value)
    with pytest.raises(SystemExit) as caught:
        cli.main(["start"])
    assert str(caught.value).startswith(
        f"labci-runner: LABCI_RUNNER_JOB_ENV: Value error, {message}"
    )


def test_names_for_jobs_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCI_RUNNER_JOB_ENV", " HF_HOME, https_proxy ,,NO_PROXY")
    assert Settings().job_env == ["HF_HOME", "https_proxy", "NO_PROXY"]
    monkeypatch.delenv("LABCI_RUNNER_JOB_ENV")
    assert Settings().job_env == []


async def test_a_container_gets_the_allow_list_and_nothing_of_the_runner(
    docker_host: str,
    test_images,
    job_dirs: JobDirs,
    sink: LogSink,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**RUNNER_ENV, "LABCI_RUNNER_JOB_ENV": "HF_HOME"}.items():
        monkeypatch.setenv(name, value)
    executor = DockerExecutor(
        DockerEngine(docker_host),
        DockerSettings(runner_name="env-test", pull_policy="never", defaults=ContainerDefaults()),
    )
    step = {"run": 'env > "$LABCI_OUTPUT/env.txt"', "env": {"B": "step", "C": "step"}}
    job = make_job(step, env={"A": "job"}, container={"image": test_images.busybox})
    ctx = make_context(job_dirs, sink, recorder, server_env=SERVER_ENV)
    outcome = await executor.run(job, ctx)
    await sink.close()
    assert outcome.outcome == "success", recorder.texts()
    dumped = (job_dirs.output / "env.txt").read_text()
    env = read_env(dumped)
    assert set(env) - SHELL_ADDED == {
        "PATH", "HOSTNAME", "HOME",  # the image's PATH, the container's name, HOME=/tmp
        "A", "B", "C",
        "LABCI_JOB_ID", "LABCI_ATTEMPT", "LABCI_BRANCH",
        "LABCI_OUTPUT", "LABCI_WORKSPACE", "CI", "NVIDIA_VISIBLE_DEVICES",
    }  # fmt: skip
    for value in SECRETS.values():
        assert value not in dumped
    assert env["PATH"] != RUNNER_ENV["PATH"]
    assert (env["HOME"], env["C"], env["LABCI_OUTPUT"]) == ("/tmp", "step", "/labci/output")  # noqa: S108
