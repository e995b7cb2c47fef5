"""deploy/docker-compose.yml brought up for real on the machine's Docker engine.

The images are the ones `scripts/build-images.sh` builds (labci's from deploy/docker/, on a
debootstrapped Debian base, plus local stand-ins for the official postgres and redis images:
no registry is reachable here). Compose runs the operator's file with CI's additions
(tests/deploy_smoke/docker-compose.ci.yml: host network, ports) and the images' tags, in a project
directory of the test's own holding the secrets, and follows the README's steps: `up`, a
registration token from `labci runners token` in the server's container, then the runner.
A signed push webhook must then end as a `success` status posted to the GitHub stand-in,
and `/metrics` and `/readyz` must tell the same story.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from forge_standin import create_bare_repo, headers, push_payload
from helpers.services import free_port, missing_service
from helpers.stack import wait_for_statuses
from helpers.waiting import wait_until
from labci_server.secrets import generate_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CI_FILE = Path(__file__).with_name("docker-compose.ci.yml")
# Tags scripts/build-images.sh gives the images (it prints them, too).
IMAGES = {
    "LABCI_SERVER_IMAGE": "labci/server:local",
    "LABCI_RUNNER_IMAGE": "labci/runner:local",
    "LABCI_POSTGRES_IMAGE": "labci-local/postgres:15",
    "LABCI_REDIS_IMAGE": "labci-local/redis:7",
}
SERVICES = ("postgres", "redis", "migrate", "server", "worker")
UP_TIMEOUT_S = 240

WORKFLOW = """\
name: smoke
on: push
jobs:
  check:
    runs-on: [cpu]
    timeout-minutes: 5
    steps:
      - run: |
          echo '{"accuracy": 0.75}' > "$LABCI_OUTPUT/metrics.json"
    metrics:
      file: metrics.json
"""


@dataclass
class ComposeProject:
    """One `docker-compose` project: its directory (secrets/, redis/) and environment."""

    directory: Path
    env: dict[str, str]
    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def file(self) -> Path:
        return self.directory / "docker-compose.yml"

    def render(self) -> None:
        """The operator's file with CI's additions, as `docker-compose config` merges them,
        less the published port: under the host's network Docker refuses port bindings,
        and Compose 1.29 has no way for an override to drop a list (no `!reset`)."""
        files = [DEPLOY / "docker-compose.yml", CI_FILE]
        config = yaml.safe_load(self.run("config", files=files).stdout)
        published = config["services"]["server"].pop("ports")
        assert published, "the server publishes its port"
        self.file.write_text(yaml.safe_dump(config))

    def run(
        self, *args: str, files: list[Path] | None = None, timeout_s: float = UP_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """`docker-compose ARGS` on the rendered file (or `files`); fails with its logs."""
        done = self.compose(*args, files=files, timeout_s=timeout_s)
        if done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {done.stderr}{self.logs()}")
        return done

    def compose(
        self, *args: str, files: list[Path] | None = None, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        options = [item for path in files or [self.file] for item in ("-f", str(path))]
        return subprocess.run(
            ["docker-compose", "--project-directory", str(self.directory), *options, *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )

    def logs(self) -> str:
        if not self.file.exists():
            return ""
        done = self.compose("logs", "--no-color", "--tail=60", timeout_s=60)
        return f"\n===== docker-compose logs =====\n{done.stdout}{done.stderr}"

    def healthcheck(self, service: str) -> list[str]:
        """The command of the `CMD` health check the rendered file gives `service`."""
        test = yaml.safe_load(self.file.read_text())["services"][service]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        return list(test[1:])

    def secret(self, name: str) -> str:
        return (self.directory / "secrets" / name).read_text().strip()


def write_secrets(folder: Path, *, postgres_port: int, redis_port: int, github_token: str) -> None:
    """The files deploy/secrets/README lists, made as it says (0444 files in a 0700 dir)."""
    postgres_password, redis_password = secrets.token_hex(16), secrets.token_hex(16)
    values = {
        "postgres_password": postgres_password,
        "database_url": f"postgresql://labci:{postgres_password}@127.0.0.1:{postgres_port}/labci",
        "redis_password": redis_password,
        "redis_url": f"redis://labci:{redis_password}@127.0.0.1:{redis_port}/0",
        "webhook_secret": secrets.token_hex(16),
        "secret_key": generate_key(),
        "github_token": github_token,
        "registration_token": "",
    }
    folder.mkdir(mode=0o700)
    for name, value in values.items():
        path = folder / name
        path.write_text(value + "\n" if value else "")
        path.chmod(0o444)


def engine_and_images(docker_host: str) -> None:
    if shutil.which("docker-compose") is None:
        missing_service("docker-compose", "install Debian's docker-compose (.ci/run does)")
    if shutil.which("docker") is None:
        missing_service("docker", "the docker command is missing (Debian's docker.io)")
    for image in IMAGES.values():
        found = subprocess.run(
            ["docker", "image", "inspect", image],
            env={**os.environ, "DOCKER_HOST": docker_host},
            capture_output=True,
            check=False,
        )
        if found.returncode != 0:
            missing_service("docker", f"no image {image}: run scripts/build-images.sh")


@pytest.fixture
def project(
    tmp_path: Path, github, docker_host: str, request: pytest.FixtureRequest
) -> Iterator[ComposeProject]:
    engine_and_images(docker_host)
    directory = tmp_path / "compose"
    directory.mkdir()
    shutil.copytree(DEPLOY / "redis", directory / "redis")
    (directory / "gitconfig").write_text("[safe]\n\tdirectory = *\n")
    postgres_port, redis_port, http_port = free_port(), free_port(), free_port()
    (github_token,) = github.standin.tokens  # the one token the stand-in accepts
    write_secrets(
        directory / "secrets",
        postgres_port=postgres_port,
        redis_port=redis_port,
        github_token=github_token,
    )
    env = {
        **os.environ,
        **IMAGES,
        "DOCKER_HOST": docker_host,
        "COMPOSE_PROJECT_NAME": f"labci-smoke-{uuid.uuid4().hex[:8]}",
        "LABCI_PUBLIC_URL": f"http://127.0.0.1:{http_port}",
        "LABCI_SMOKE_POSTGRES_PORT": str(postgres_port),
        "LABCI_SMOKE_REDIS_PORT": str(redis_port),
        "LABCI_SMOKE_HTTP_PORT": str(http_port),
        "LABCI_SMOKE_WORKER_METRICS_PORT": str(free_port()),
        "LABCI_SMOKE_GITHUB_URL": github.url,
        "LABCI_SMOKE_REPOS": str(github.repos_root),
        "LABCI_SMOKE_GITCONFIG": str(directory / "gitconfig"),
    }
    compose = ComposeProject(directory, env, http_port)
    compose.render()
    try:
        yield compose
    finally:
        call = getattr(request.node, "rep_call", None)
        if call is None or call.failed:
            print(compose.logs())
        compose.run("kill")  # nothing here tests a graceful stop: saves seconds
        compose.run("down", "--volumes", "--remove-orphans")


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def push_a_workflow(project: ComposeProject, github) -> str:
    """A repository on the stand-in with one workflow, and its push delivered to the
    composed server, signed with the webhook secret; returns the commit."""
    repo = create_bare_repo(github.repos_root, "octo", "smoke")
    sha = repo.commit({".labci/smoke.yml": WORKFLOW})
    payload = push_payload("octo", "smoke", repo.clone_url, "refs/heads/main", "0" * 40, sha)
    body = json.dumps(payload).encode()
    for delivery, secret, code in [
        ("smoke-1", project.secret("webhook_secret"), 202),
        ("smoke-2", "not the secret", 401),
    ]:
        answer = httpx.post(
            project.url + "/webhooks/github",
            content=body,
            headers=headers("push", delivery, body, secret),
            timeout=30,
        )
        assert answer.status_code == code, answer.text
    return sha


def test_compose_up_runs_a_pushed_workflow_to_a_success_status(project: ComposeProject, github):
    project.run("up", "--detach", "--no-build", *SERVICES)
    wait_until(lambda: ready(project.url), what="/readyz of the server's container")
    # README: `docker-compose exec server labci runners token > secrets/registration_token`
    token = project.run("exec", "-T", "server", "labci", "runners", "token").stdout
    (project.directory / "secrets" / "registration_token").write_text(token)
    project.run("up", "--detach", "--no-build", "runner")

    sha = push_a_workflow(project, github)
    statuses = wait_for_statuses(
        github.standin,
        ("octo", "smoke", sha),
        lambda posted: any(s["state"] != "pending" for s in posted),
        "a final status from the composed labci",
    )
    final = [
        (s["context"], s["state"], s["description"]) for s in statuses if s["state"] != "pending"
    ]
    assert final == [("labci/smoke/check", "success", "accuracy 0.75")]
    assert statuses[-1]["target_url"].startswith(project.url + "/runs/")

    readiness = httpx.get(project.url + "/readyz", timeout=10)
    assert readiness.json() == {"status": "ready", "database": "ok", "redis": "ok"}
    metrics = httpx.get(project.url + "/metrics", timeout=10).text
    assert "labci_runners_online 1.0" in metrics
    assert 'labci_webhook_response_seconds_count{code="202",forge="github"} 1.0' in metrics
    assert 'labci_webhook_response_seconds_count{code="401",forge="github"} 1.0' in metrics
    assert 'labci_job_run_seconds_count{outcome="success"} 1.0' in metrics
    # The compose file's health checks of the worker and the runner, run once, as Docker would.
    for service in ("worker", "runner"):
        project.run("exec", "-T", service, *project.healthcheck(service))


@pytest.mark.parametrize(
    ("variable", "user", "label"),
    [("LABCI_SERVER_IMAGE", "labci", "server"), ("LABCI_RUNNER_IMAGE", "labci-runner", "runner")],
    ids=["server", "runner"],
)
def test_images_run_as_their_own_users_with_a_health_check(
    docker_host: str, variable: str, user: str, label: str
):
    engine_and_images(docker_host)
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config}}", IMAGES[variable]],
        env={**os.environ, "DOCKER_HOST": docker_host},
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(done.stdout)
    assert config["User"] == user
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Labels"] == {"org.labci.image": label}
