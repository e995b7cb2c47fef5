"""Shared fixtures: a clean database (SQLite, or PostgreSQL when LABCI_TEST_DATABASE_URL is
set) and a clean real Redis (LABCI_REDIS_URL, or an embedded redis-server) for every test.

In CI (CI=true) a missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis as redis_sync

from helpers.services import (
    EmbeddedRedisServer,
    ensure_postgres_database,
    missing_service,
    reset_postgres,
)

GITHUB_TOKEN = "test-token"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


REQUIRED = {
    part.strip() for part in os.environ.get("LABCI_TEST_REQUIRE", "").split(",") if part.strip()
}


# pytest-xdist's worker id ("gw0", "gw1", …) in a worker process, None otherwise.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI:
        needed = ("LABCI_TEST_DATABASE_URL", "LABCI_REDIS_URL", "LABCI_TEST_DOCKER_HOST")
        missing = [v for v in needed if not os.environ.get(v)]
        if missing:
            raise pytest.UsageError(
                f"CI=true but {', '.join(missing)} not set: services are required in CI"
            )
    pg = os.environ.get("LABCI_TEST_DATABASE_URL")
    if XDIST_WORKER and pg:
        # Each worker process gets a PostgreSQL database of its own (created on first use),
        # set in the environment so that every test and helper reading the variable, and
        # every process a test starts, use it.
        os.environ["LABCI_TEST_DATABASE_URL"] = ensure_postgres_database(
            pg, f"{pg.rsplit('/', 1)[1]}_{XDIST_WORKER}"
        )


def has_nvidia_driver() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 — no bindings, no library, no device
        return False
    pynvml.nvmlShutdown()
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run where there are NVIDIA GPUs; elsewhere (CI included: its machines
    have none) they are deselected, and the summary says so.

    Tests on the Docker engine run one at a time on one xdist worker (`--dist loadgroup`):
    their runners share names across workers, and a runner removes its name's leftover
    containers when it starts."""
    for item in items:
        if "docker_host" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("docker-engine"))
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items or has_nvidia_driver():
        return
    config.hook.pytest_deselected(items=gpu_items)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]
    config.stash[GPU_DESELECTED] = len(gpu_items)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    count = config.stash.get(GPU_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"{count} gpu test(s) deselected: no NVIDIA driver (NVML) on this machine"
        )


GPU_DESELECTED = pytest.StashKey[int]()


def worker_number() -> int:
    return int(XDIST_WORKER.removeprefix("gw")) if XDIST_WORKER else 0


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("LABCI_REDIS_URL")
    if url:
        # The database the URL names (0 if none), and the next ones for further xdist
        # workers: a second copy of the suite run at once on another database (as on a
        # loaded machine) never shares one with this copy, and tests flush only their own.
        parts = urlsplit(url)
        named = parts.path.strip("/")
        first = int(named) if named.isdigit() else 0
        yield urlunsplit(parts._replace(path=f"/{first + worker_number()}"))
        return
    server = EmbeddedRedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = redis_sync.Redis.from_url(redis_server)
    client.flushdb()
    client.close()
    return redis_server


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    pg = os.environ.get("LABCI_TEST_DATABASE_URL")
    if pg:
        reset_postgres(pg)
        yield pg
        return
    yield f"sqlite:///{tmp_path / 'labci.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labci-sqlite.db'}"


@pytest.fixture(scope="session")
def openapi_checker():
    from forge_standin import OpenAPIChecker

    return OpenAPIChecker()


@pytest.fixture
def github(tmp_path: Path, openapi_checker):
    """The GitHub stand-in on a real port; every request labci sent must match the
    @octokit/openapi description (C6), checked when the test ends."""
    from forge_standin import StandinServer

    repos = tmp_path / "github-repos"
    repos.mkdir()
    with StandinServer(repos, openapi_checker, tokens=[GITHUB_TOKEN]) as server:
        server.repos_root = repos
        yield server
        assert server.standin.violations == []


@pytest.fixture(scope="session")
def docker_host() -> str:
    """A real Docker engine (LABCI_TEST_DOCKER_HOST; `bash scripts/docker-engine.sh` starts one)."""
    import docker

    url = os.environ.get("LABCI_TEST_DOCKER_HOST")
    if not url:
        missing_service(
            "docker", "LABCI_TEST_DOCKER_HOST is not set (see scripts/docker-engine.sh)"
        )
    assert url is not None
    try:
        client = docker.DockerClient(base_url=url)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 — any failure means: no engine here
        missing_service("docker", f"the engine at {url} does not answer: {exc}")
    return url


@pytest.fixture(scope="session")
def test_images(docker_host: str):
    import docker

    from helpers.images import build_test_images

    client = docker.DockerClient(base_url=docker_host)
    try:
        return build_test_images(client)
    finally:
        client.close()
