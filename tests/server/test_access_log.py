"""The access log: probes and heartbeats are left out, query strings are stripped, and every
path it leaves out is a route the server has."""

from __future__ import annotations

import logging

import httpx

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.operations.logformat import ACCESS_LOGGER, QUIET_PATHS, AccessFilter


def access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it."""
    args = ("127.0.0.1:5000", "POST", path, "1.1", 200)
    return logging.LogRecord(
        ACCESS_LOGGER, logging.INFO, "h11_impl.py", 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_heartbeats_and_probes_are_left_out() -> None:
    for path in ("/api/v1/runners/heartbeat", "/healthz", "/readyz?x=1", "/metrics"):
        assert AccessFilter().filter(access_record(path)) is False, path


def test_other_requests_are_kept_without_their_query_string() -> None:
    record = access_record("/api/v1/runs?token=secret-value")
    assert AccessFilter().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5000 - "POST /api/v1/runs HTTP/1.1" 200'


async def test_every_quiet_path_is_a_route(sqlite_url, redis_url) -> None:
    """A path left out that no route has would leave the real one in the log."""
    await upgrade(sqlite_url)
    app = create_app(test_settings(sqlite_url, redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            for path in QUIET_PATHS:
                method = "POST" if "heartbeat" in path else "GET"
                answer = await c.request(method, path)
                assert answer.status_code not in (404, 405), (path, answer.status_code)
