"""Shared fixtures: a clean database (SQLite, or PostgreSQL when LABCI_TEST_DATABASE_URL is
set) and a clean real Redis (LABCI_REDIS_URL, or an embedded redis-server) for every test.

In CI (CI=true) a missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from helpers.services import EmbeddedRedisServer, reset_postgres

GITHUB_TOKEN = "test-token"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI:
        missing = [
            v for v in ("LABCI_TEST_DATABASE_URL", "LABCI_REDIS_URL") if not os.environ.get(v)
        ]
        if missing:
            raise pytest.UsageError(
                f"CI=true but {', '.join(missing)} not set: services are required in CI"
            )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("LABCI_REDIS_URL")
    if url:
        base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        yield f"{base}/14"  # a database of its own on the shared server
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
