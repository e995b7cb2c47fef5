"""The API docs page, `/docs`: Swagger UI served from this server, never from a CDN.

FastAPI's own page loads its script and stylesheet from a CDN and its favicon from
fastapi.tiangolo.com, and starts Swagger UI with inline script; both are refused by the
pages' Content-Security-Policy. Here the assets come from the `fastapi-swagger` package
(Swagger UI 5, which reads OpenAPI 3.1) and the start-up code from `docs_assets/`.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from ..auth.policies import PUBLIC, policy
from ..errors import NotFound

_SWAGGER = files("fastapi_swagger") / "resources"
_OURS = Path(__file__).with_name("docs_assets")
ASSETS: Final = {
    "swagger-ui-bundle.js": (_SWAGGER / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (_SWAGGER / "swagger-ui.css", "text/css"),
    "favicon-32x32.png": (_SWAGGER / "favicon-32x32.png", "image/png"),
    "labci-docs.js": (_OURS / "labci-docs.js", "text/javascript"),
}
ASSETS_PATH: Final = "/docs/assets"


def docs_page(title: str) -> str:
    # Relative addresses, so the page also works under a reverse proxy's path prefix.
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} API</title>"
        "<link rel='stylesheet' href='docs/assets/swagger-ui.css'>"
        "<link rel='icon' type='image/png' href='docs/assets/favicon-32x32.png'>"
        "</head><body><div id='swagger-ui' data-openapi-url='openapi.json'></div>"
        "<script src='docs/assets/swagger-ui-bundle.js'></script>"
        "<script src='docs/assets/labci-docs.js'></script></body></html>"
    )


def install_docs(app: FastAPI) -> None:
    if app.openapi_url != "/openapi.json":  # the page points at /openapi.json
        return
    page = docs_page(app.title)

    @app.get("/docs", include_in_schema=False, dependencies=policy(PUBLIC))
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False, dependencies=policy(PUBLIC))
    async def docs_asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise NotFound(f"no docs asset named {name!r}")
        path, media_type = ASSETS[name]
        return FileResponse(
            str(path), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )
