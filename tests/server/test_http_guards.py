"""HTTP guards in process (issue 9, reliability A3 and D15): body caps and read timeouts,
request-target checks, bounded parameters, write rate limits, security headers and the
self-hosted API docs page. The same guards under a real `labci serve` (sockets, memory,
stalled connections) are in tests/e2e/test_http_limits.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from helpers.server import TEST_SECRET, test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.errors import LabciError
from labci_server.http.caps import DEFAULT_BYTES, EVENT_BYTES, LOG_BATCH_BYTES, WEBHOOK_BYTES
from labci_server.http.headers import CONTENT_SECURITY_POLICY, with_security_headers
from labci_server.http.params import MAX_INT32, AttemptQuery, RowId, clamp_limit
from labci_server.http.ratelimit import TooManyRequests, WriteLimiter, limit_writes, parse_rate
from labci_server.http.serving import RESERVED_FDS, connection_cap, serve_options
from labci_server.http.signed_body import SPOOL_MEMORY_BYTES, read_verified_body

KIB, MIB = 1024, 1024 * 1024
NO_ROWS = {"events": 0, "runs": 0, "jobs": 0, "outbox": 0, "repositories": 0}
WRONG_SIGNATURE = {"X-Hub-Signature-256": "sha256=" + "0" * 64}


async def open_client(settings) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade(settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


@pytest.fixture
async def client(database_url, redis_url):
    async for c in open_client(test_settings(database_url, redis_url)):
        yield c


async def table_counts(client) -> dict[str, int]:
    from labci_server.db.queries.counts import count_rows

    async with client.app.state.context.sessions() as session:
        return await count_rows(session, list(NO_ROWS))


@dataclass
class Sent:
    """What a streamed request body has handed to the server so far."""

    chunks: int = 0
    bytes: int = 0


async def body_stream(sent: Sent, total: int, chunk: int = 64 * KIB) -> AsyncIterator[bytes]:
    while sent.bytes < total:
        piece = b"x" * min(chunk, total - sent.bytes)
        sent.chunks += 1
        sent.bytes += len(piece)
        yield piece


# --- body caps ------------------------------------------------------------------------

CAPPED_ROUTES = [
    ("POST", "/webhooks/github", WEBHOOK_BYTES),
    ("POST", "/webhooks/git", EVENT_BYTES),
    ("POST", "/api/v1/dispatches", EVENT_BYTES),
    ("POST", "/api/v1/runner/jobs/1/logs", LOG_BATCH_BYTES),
    ("POST", "/api/v1/runner/jobs/1/complete", DEFAULT_BYTES),
    ("POST", "/api/v1/runners/heartbeat", DEFAULT_BYTES),
    ("POST", "/api/v1/runners/register", DEFAULT_BYTES),
    ("POST", "/login", DEFAULT_BYTES),
    ("PUT", "/api/v1/runner/jobs/1/logs", DEFAULT_BYTES),
]


@pytest.mark.parametrize(
    ("method", "path", "cap"), CAPPED_ROUTES, ids=[f"{m} {p}" for m, p, _ in CAPPED_ROUTES]
)
async def test_a_declared_length_over_the_cap_is_413_before_a_byte_is_read(
    client, method, path, cap
):
    sent = Sent()
    response = await client.request(
        method,
        path,
        content=body_stream(sent, cap + 1),
        headers={"Content-Length": str(cap + 1), **WRONG_SIGNATURE},
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": f"request body too large: this route accepts at most {cap} bytes"
    }
    assert response.headers["connection"] == "close"
    assert sent.chunks == 0
    assert await table_counts(client) == NO_ROWS


async def test_a_declared_length_at_the_cap_is_not_refused_by_the_guard(client):
    sent = Sent()
    response = await client.post(
        "/api/v1/runner/jobs/1/logs",
        content=body_stream(sent, LOG_BATCH_BYTES),
        headers={"Content-Length": str(LOG_BATCH_BYTES)},
    )
    # The route's own answer (no runner token), not the guard's.
    assert response.status_code == 401
    assert "too large" not in response.text


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/webhooks/github", WEBHOOK_BYTES), ("/api/v1/runner/jobs/1/logs", LOG_BATCH_BYTES)],
    ids=["webhook", "log batch"],
)
async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_cap(client, path, cap):
    sent = Sent()
    response = await client.post(
        path, content=body_stream(sent, cap + 2 * MIB), headers=WRONG_SIGNATURE
    )
    if path.startswith("/api/v1/runner") and response.status_code == 401:
        # The runner-token check came first: nothing of the body was read at all.
        assert sent.bytes <= 64 * KIB
        return
    assert response.status_code == 413
    assert response.json()["error"].startswith("request body too large")
    assert response.headers["connection"] == "close"
    assert cap < sent.bytes <= cap + 64 * KIB
    assert await table_counts(client) == NO_ROWS


async def test_artifact_uploads_are_left_to_their_handler(client):
    sent = Sent()
    size = 30 * MIB
    response = await client.put(
        "/api/v1/runner/jobs/1/artifacts/model.bin?attempt=1",
        content=body_stream(sent, size),
        headers={"Content-Length": str(size)},
    )
    assert response.status_code == 401  # no runner token; not 413
    # Answered before the body was read: the connection is not kept to drain it.
    assert response.headers["connection"] == "close"
    assert sent.bytes < size


@pytest.fixture
async def quick_timeout_client(database_url, redis_url):
    # The stall below never ends (an event nobody sets): the timeout only sets how soon
    # the test finishes, not whether it passes.
    settings = test_settings(database_url, redis_url, body_read_timeout_s=0.2)
    async for c in open_client(settings):
        yield c


async def test_a_body_that_stalls_is_answered_408(quick_timeout_client):
    never = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield b'{"ref": '
        await never.wait()
        yield b'"refs/heads/main"}'

    response = await quick_timeout_client.post(
        "/webhooks/github",
        content=stalling(),
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "slow-1", **WRONG_SIGNATURE},
    )
    assert response.status_code == 408
    assert response.json() == {"error": "request body stalled: nothing arrived for 0.2 s"}
    assert response.headers["connection"] == "close"


# --- request targets ------------------------------------------------------------------

BAD_TARGETS = [
    "/runs/%00",
    "/api/v1/runs/1%00",
    "/api/v1/runs?repository=a%00b",
    "/api/v1/runs?commit=%FF",
    "/runs/%C3%28",
    "/badges/a%00/b/c.svg",
    "/api/v1/runs?x=%ED%A0%80",  # an encoded surrogate is not UTF-8
]


@pytest.mark.parametrize("target", BAD_TARGETS, ids=BAD_TARGETS)
async def test_nul_or_invalid_utf8_in_the_target_is_400(client, target):
    response = await client.get(target)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "NUL" in error or "UTF-8" in error
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_valid_utf8_in_the_query_passes(client):
    response = await client.get("/api/v1/runs?repository=caf%C3%A9")
    assert response.status_code == 200
    assert response.json() == []


# --- parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 50), (-1, 1), (0, 1), (1, 1), (200, 200), (500, 500), (501, 500), (2**70, 500)],
    ids=["absent", "-1", "0", "1", "within", "maximum", "above", "2**70"],
)
def test_clamp_limit(value, expected):
    assert clamp_limit(value, default=50, maximum=500) == expected


@pytest.fixture
async def params_client():
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: RowId, attempt: AttemptQuery) -> dict[str, int]:
        return {"thing_id": thing_id, "attempt": attempt}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    ("thing", "attempt", "status"),
    [
        (1, 1, 200),
        (MAX_INT32, MAX_INT32, 200),
        (0, 1, 422),
        (-5, 1, 422),
        (MAX_INT32 + 1, 1, 422),
        (2**63, 1, 422),
        (2**70, 1, 422),
        (1, 0, 422),
        (1, 2**64, 422),
    ],
    ids=["1", "max", "0", "negative", "max+1", "2**63", "2**70", "attempt 0", "attempt 2**64"],
)
async def test_row_ids_and_attempts_are_bounded(params_client, thing, attempt, status):
    response = await params_client.get(f"/things/{thing}", params={"attempt": attempt})
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"thing_id": thing, "attempt": attempt}


# --- signed bodies --------------------------------------------------------------------


@pytest.fixture
async def signed_client():
    app = FastAPI()

    @app.exception_handler(LabciError)
    async def labci_error(_request: Request, exc: LabciError):
        from fastapi.responses import JSONResponse

        return JSONResponse({"error": str(exc)}, status_code=exc.status_code)

    @app.post("/signed")
    async def signed(request: Request) -> dict[str, object]:
        body = await read_verified_body(request, TEST_SECRET, 4 * MIB)
        return {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def signature(body: bytes, secret: str = TEST_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    "size", [0, 100, SPOOL_MEMORY_BYTES, 3 * MIB], ids=["empty", "small", "spool", "on disk"]
)
async def test_a_signed_body_comes_back_whole(signed_client, size):
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    response = await signed_client.post(
        "/signed", content=body, headers={"X-Hub-Signature-256": signature(body)}
    )
    assert response.status_code == 200
    assert response.json() == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}


async def test_a_missing_signature_is_refused_before_the_body_is_read(signed_client):
    sent = Sent()
    response = await signed_client.post("/signed", content=body_stream(sent, 3 * MIB))
    assert response.status_code == 401
    assert response.json() == {
        "error": "missing or malformed X-Hub-Signature-256: expected sha256=<hex>"
    }
    assert sent.chunks == 0


@pytest.mark.parametrize(
    "header",
    ["sha256=" + "0" * 64, "sha256=", "sha1=" + "0" * 40, "0" * 64, "sha256=" + "z" * 64],
    ids=["wrong", "empty", "sha1", "no prefix", "not hex"],
)
async def test_a_bad_signature_is_401(signed_client, header):
    body = b"x" * (2 * MIB)
    response = await signed_client.post(
        "/signed", content=body, headers={"X-Hub-Signature-256": header}
    )
    assert response.status_code == 401


async def test_a_signed_body_over_the_cap_is_413(signed_client):
    body = b"x" * (4 * MIB + 1)
    response = await signed_client.post(
        "/signed", content=body, headers={"X-Hub-Signature-256": signature(body)}
    )
    assert response.status_code == 413


# --- write rate limit -----------------------------------------------------------------


@pytest.fixture
async def limited_client(database_url, redis_url):
    settings = test_settings(database_url, redis_url, write_rate_limit="3/minute")
    async for c in open_client(settings):

        async def write() -> dict[str, bool]:
            return {"ok": True}

        c.app.add_api_route(
            "/test/write", write, methods=["POST"], dependencies=[Depends(limit_writes)]
        )
        yield c


async def test_writes_beyond_the_rate_answer_429_with_retry_after(limited_client, redis_url):
    token_a = {"Authorization": "Bearer token-a-secret"}
    answers = [(await limited_client.post("/test/write", headers=token_a)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"].startswith("too many writes: at most 3 per 1 minute")
    # Another token has its own budget.
    other = await limited_client.post("/test/write", headers={"Authorization": "Bearer token-b"})
    assert other.status_code == 200
    # Tokens are never stored in clear.
    keys = await limited_client.app.state.context.redis.keys("labci:writes*")
    assert keys
    assert not [k for k in keys if b"token-a-secret" in k]


async def test_the_limiter_counts_per_key(redis_url):
    limiter = WriteLimiter(redis_url, parse_rate("2/hour"))
    try:
        await limiter.hit("a")
        await limiter.hit("a")
        with pytest.raises(TooManyRequests) as refused:
            await limiter.hit("a")
        assert 3000 < refused.value.retry_after_s <= 3600
        assert refused.value.status_code == 429
        await limiter.hit("b")
    finally:
        await limiter.aclose()


def test_a_malformed_rate_names_its_variable(database_url, redis_url):
    settings = test_settings(database_url, redis_url, write_rate_limit="lots")
    with pytest.raises(LabciError, match="LABCI_WRITE_RATE_LIMIT='lots'"):
        create_app(settings)


# --- security headers -----------------------------------------------------------------

HTML_SECURITY = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


@pytest.mark.parametrize("path", ["/", "/docs", "/login"])
async def test_html_pages_carry_the_security_headers(client, path):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert {k: response.headers.get(k) for k in HTML_SECURITY} == HTML_SECURITY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY


async def test_other_answers_are_nosniff_without_a_page_policy(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            [
                (b"content-type", b"image/svg+xml"),
                (b"content-security-policy", b"default-src 'none'"),
            ],
            {"content-security-policy": "default-src 'none'", "x-content-type-options": "nosniff"},
        ),
        (
            [(b"content-type", b"text/html"), (b"Content-Security-Policy", b"default-src 'none'")],
            {
                "content-security-policy": "default-src 'none'",
                "x-frame-options": "DENY",
                "referrer-policy": "same-origin",
                "x-content-type-options": "nosniff",
            },
        ),
        (
            [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")],
            {"x-content-type-options": "nosniff"},
        ),
    ],
    ids=["badge keeps its policy", "a page's own policy wins", "nothing doubled"],
)
def test_a_header_the_route_set_wins(headers, expected):
    result = with_security_headers(list(headers))
    security = {
        name.decode().lower(): value.decode()
        for name, value in result
        if name.lower() != b"content-type"
    }
    assert security == expected
    assert len(result) == len({name.lower() for name, _ in result})


# --- the API docs page ----------------------------------------------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False
        self.data_urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("src", "href"):
            if found.get(name):
                self.urls.append(str(found[name]))
        if found.get("data-openapi-url"):
            self.data_urls.append(str(found["data-openapi-url"]))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


async def test_the_docs_page_loads_only_same_origin_assets(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    links = Links()
    links.feed(page.text)
    assert links.inline_scripts == []
    assert len(links.urls) == 4  # stylesheet, icon, Swagger UI, our start-up script
    base = "http://labci.test/docs"
    for url in [*links.urls, *links.data_urls]:
        resolved = urlsplit(urljoin(base, url))
        assert (resolved.scheme, resolved.netloc) == ("http", "labci.test"), url
        asset = await client.get(resolved.path)
        assert asset.status_code == 200, url
        assert asset.content
    start = await client.get("/docs/assets/labci-docs.js")
    assert start.headers["content-type"].startswith("text/javascript")
    assert not re.search(r"https?://", start.text)
    assert "validatorUrl: null" in start.text
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    assert json.loads((await client.get("/openapi.json")).text)["openapi"].startswith("3.")


async def test_an_unknown_docs_asset_is_404(client):
    response = await client.get("/docs/assets/__init__.py")
    assert response.status_code == 404
    assert response.json() == {"error": "no docs asset named '__init__.py'"}
    assert (await client.get("/docs/assets/..%2F..%2Fsettings.py")).status_code == 404


# --- serving --------------------------------------------------------------------------


def test_serve_options_guard_the_connections(database_url, redis_url):
    import resource

    from labci_server.http.protocol import GuardedH11Protocol

    settings = test_settings(
        database_url, redis_url, header_timeout_s=7.5, keep_alive_timeout_s=3.0
    )
    options = serve_options(settings)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert issubclass(options["http"], GuardedH11Protocol)
    assert options["http"].header_timeout_s == 7.5
    assert options["limit_concurrency"] == min(4096, soft - RESERVED_FDS)
    assert options["http"].max_connections == options["limit_concurrency"]
    assert options["timeout_keep_alive"] == 3.0


@pytest.mark.parametrize(
    ("wanted", "open_files", "expected"),
    [(4096, 1_048_576, 4096), (4096, 1024, 1024 - RESERVED_FDS), (100, 20, 16)],
    ids=["room", "few files", "almost none"],
)
def test_connection_cap_leaves_descriptors_for_the_server(wanted, open_files, expected):
    assert connection_cap(wanted, open_files) == expected
