"""/static: the web UI's own files and the vendored front-end packages, served by labci
itself to anyone (no secret is in them), with validators so browsers keep them."""

from __future__ import annotations

import httpx

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.web.static_files import STATIC_DIR, static_url


async def test_vendored_files_are_served_as_they_are_shipped(sqlite_url, redis_url) -> None:
    await upgrade(sqlite_url)
    app = create_app(test_settings(sqlite_url, redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci") as client:
            url = static_url("vendor/htmx.min.js")
            served = await client.get(url)
            assert served.status_code == 200
            assert served.headers["content-type"].startswith(
                ("text/javascript", "application/javascript")
            )
            assert served.content == (STATIC_DIR / "vendor/htmx.min.js").read_bytes()
            again = await client.get(url, headers={"if-none-match": served.headers["etag"]})
            assert again.status_code == 304
            css = await client.get("/static/vendor/uPlot.min.css")
            assert css.headers["content-type"].startswith("text/css")
            assert (await client.get("/static/vendor/nope.js")).status_code == 404
            assert (await client.get("/static/../app.py")).status_code == 404
