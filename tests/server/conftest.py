"""What the web page tests share: a labci app on the test database, and a client that talks
to it in process (no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade


@dataclass
class Site:
    app: Any
    client: httpx.AsyncClient

    @property
    def sessions(self) -> Any:
        return self.app.state.context.sessions


@pytest.fixture
async def site(database_url: str, redis_url: str) -> AsyncIterator[Site]:
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as client:
            yield Site(app, client)
