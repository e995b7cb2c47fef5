"""Reliability A7: with the database unreachable a webhook gets 5xx, never 2xx, and a
redelivery once it is back is processed exactly once."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import httpx
import pytest

from forge_standin import headers, push_payload
from helpers.server import TEST_SECRET, test_settings
from helpers.tcpproxy import TcpProxy
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.queries.counts import count_rows

PG = os.environ.get("LABCI_TEST_DATABASE_URL")


def proxied(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{port}").geturl()


def delivery(delivery_id: str, after: str) -> tuple[bytes, dict[str, str]]:
    payload = push_payload(
        "octo", "exp", "https://x.invalid/octo/exp.git", "refs/heads/main", "1" * 40, after
    )
    body = json.dumps(payload).encode()
    return body, headers("push", delivery_id, body, TEST_SECRET)


@pytest.mark.skipif(not PG, reason="needs PostgreSQL (LABCI_TEST_DATABASE_URL); CI always sets it")
async def test_database_outage_answers_5xx_and_redelivery_counts_once(database_url, redis_url):
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    url = proxied(database_url, proxy.port)
    await upgrade(url)
    app = create_app(test_settings(url, redis_url))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://labci.test"
        )
        async with client:
            body, hdrs = delivery("before", "a" * 40)
            assert (
                await client.post("/webhooks/github", content=body, headers=hdrs)
            ).status_code == 202
            await proxy.cut()  # open connections die, new ones are refused
            body, hdrs = delivery("during", "b" * 40)
            for _ in range(3):
                reply = await client.post("/webhooks/github", content=body, headers=hdrs)
                assert reply.status_code >= 500
                assert reply.json() == {"error": "storage unavailable, retry later"}
            await proxy.start()
            first = await client.post("/webhooks/github", content=body, headers=hdrs)
            again = await client.post("/webhooks/github", content=body, headers=hdrs)
            assert (first.status_code, first.json()["duplicate"]) == (202, False)
            assert (again.status_code, again.json()["duplicate"]) == (202, True)
            async with app.state.context.sessions() as session:
                assert await count_rows(session, ["events"]) == {"events": 2}
    await proxy.cut()
