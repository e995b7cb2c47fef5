from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from forge_standin import OpenAPIChecker, Standin, create_standin

from ._support import API, TOKEN, Repo, build_repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return build_repo(tmp_path)


@pytest.fixture(scope="session")
def checker() -> OpenAPIChecker:
    return OpenAPIChecker()


@pytest.fixture
def standin(repo: Repo, checker: OpenAPIChecker) -> Standin:
    return create_standin(repo.root, checker)


@pytest.fixture
async def client(standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=standin.app),
        base_url=API,
        headers={
            "Authorization": f"token {TOKEN}",
            "User-Agent": "labci-test/1.0",
            "Accept": "application/vnd.github+json",
        },
    ) as c:
        yield c
