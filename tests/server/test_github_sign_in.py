"""Signing in with GitHub (issue 9, item 1): the OAuth web flow through the real app and the
GitHub stand-in, which plays both github.com (the flow) and api.github.com (`GET /user`).

The app runs in-process (httpx.ASGITransport) and the stand-in on a real port, so the hops
of the flow are driven by hand: the app's redirect to the stand-in, the stand-in's redirect
back to the callback. Cookies stay in the client that speaks to the app, like a browser's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.auth import accounts
from labci_server.db.migrate import upgrade
from labci_server.db.queries import people

CLIENT_ID, CLIENT_SECRET = "Iv1.labci-test", "oauth-test-secret"
APP_URL = "http://labci.test"
OCTOCAT = ("octocat", 583231)


@asynccontextmanager
async def labci_with_github(
    github: Any, database_url: str, redis_url: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app, signing in through the stand-in's OAuth App; `.app` on the client."""
    github.standin.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    values: dict[str, Any] = {
        "github_api_url": github.url,
        "github_web_url": github.url,
        "github_token": "test-token",
        "github_oauth_client_id": CLIENT_ID,
        "github_oauth_client_secret": CLIENT_SECRET,
        **overrides,
    }
    settings = test_settings(database_url, redis_url, **values)
    await upgrade(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_URL) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


async def through_github(client: httpx.AsyncClient, next_path: str | None = None) -> str:
    """Start signing in, let the stand-in authorize: the callback URL it redirects to."""
    query = "" if next_path is None else "?" + urlencode({"next": next_path})
    start = await client.get(f"/login/github{query}")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:  # the stand-in is on a real port
        at_github = await browser.get(start.headers["location"])
    assert at_github.status_code == 302, at_github.text
    callback = at_github.headers["location"]
    assert callback.startswith(f"{APP_URL}/login/github/callback?")
    return callback


async def sign_in_with_github(
    client: httpx.AsyncClient, github: Any, person: tuple[str, int], next_path: str = "/"
) -> httpx.Response:
    """The whole flow for `person`; the callback's answer (a 303 when signed in)."""
    github.standin.next_oauth_user = person
    return await client.get(await through_github(client, next_path))


async def who(client: httpx.AsyncClient) -> dict[str, Any] | int:
    answer = await client.get("/api/v1/user")
    return dict(answer.json()) if answer.status_code == 200 else answer.status_code


async def github_users(client: httpx.AsyncClient) -> list[tuple[str, int | None, bool]]:
    async with client.app.state.context.sessions() as session:  # type: ignore[attr-defined]
        users = await people.all_users(session)
    return [(u.login, u.forge_user_id, u.disabled) for u in users if u.provider == "github"]


@pytest.fixture
async def client(github, database_url, redis_url) -> AsyncIterator[httpx.AsyncClient]:
    async with labci_with_github(github, database_url, redis_url) as c:
        yield c


async def test_signing_in_creates_the_user_once_and_follows_a_rename(client, github):
    answer = await sign_in_with_github(client, github, OCTOCAT, next_path="/runs/7?tab=logs")
    assert (answer.status_code, answer.headers["location"]) == (303, "/runs/7?tab=logs")
    assert await who(client) == {
        "login": "octocat",
        "provider": "github",
        "admin": False,
        "via": "session",
        "scope": "admin",
    }
    await sign_in_with_github(client, github, OCTOCAT)
    assert await github_users(client) == [("octocat", 583231, False)]
    renamed = await sign_in_with_github(client, github, ("octo-cat", 583231))
    assert renamed.status_code == 303
    assert await github_users(client) == [("octo-cat", 583231, False)]
    assert (await who(client))["login"] == "octo-cat"  # type: ignore[index]
    # labci asked for no scope, and never used the person's token beyond GET /user.
    authorize = github.standin.oauth.authorize_params
    assert [p.get("scope") for p in authorize] == [None, None, None]
    assert [p["redirect_uri"] for p in authorize] == [f"{APP_URL}/login/github/callback"] * 3
    person_tokens = set(github.standin.oauth.tokens)
    used = [r.path for r in github.standin.requests if r.token in person_tokens]
    assert used == ["/user"] * 3


async def test_an_old_login_given_to_someone_else_is_moved_aside(client, github):
    await sign_in_with_github(client, github, OCTOCAT)
    await sign_in_with_github(client, github, ("octocat", 999))  # GitHub reused the name
    assert sorted(await github_users(client)) == [
        ("octocat", 999, False),
        ("octocat--583231", 583231, False),
    ]
    assert (await who(client))["login"] == "octocat"  # type: ignore[index]


async def test_a_callback_with_another_state_signs_nobody_in(client, github):
    github.standin.next_oauth_user = OCTOCAT
    callback = urlsplit(await through_github(client))
    query = parse_qs(callback.query)
    forged = urlencode({"code": query["code"][0], "state": "not-the-one-we-gave"})
    answer = await client.get(f"/login/github/callback?{forged}")
    assert answer.status_code == 400
    assert "was not started from this browser" in answer.text
    assert await who(client) == 401
    assert await github_users(client) == []
    # Nor does the genuine callback in another browser (without this session).
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app),  # type: ignore[attr-defined]
        base_url=APP_URL,
    ) as other_browser:
        stolen = await other_browser.get(f"{callback.path}?{callback.query}")
        assert stolen.status_code == 400
        assert await who(other_browser) == 401
    assert await github_users(client) == []


async def test_a_refusal_ends_on_the_login_page(client, github):
    github.standin.deny_next_oauth()
    answer = await client.get(await through_github(client))
    assert answer.status_code == 403
    assert "declined to let labci see your GitHub identity" in answer.text
    assert "<h1>Sign in</h1>" in answer.text
    assert await who(client) == 401
    assert await github_users(client) == []


async def test_github_errors_are_explained_never_a_500(client, github):
    github.standin.next_oauth_user = OCTOCAT
    callback = await through_github(client)
    github.standin.fail_next(1, 502, method="POST")  # the token exchange
    unreachable = await client.get(callback)
    assert unreachable.status_code == 503
    assert "GitHub could not be asked who you are" in unreachable.text
    # The code was not spent, but the state was: the same callback again is refused.
    again = await client.get(callback)
    assert again.status_code == 400
    assert await who(client) == 401


async def test_a_wrong_client_secret_is_a_refusal_from_github(github, database_url, redis_url):
    async with labci_with_github(
        github, database_url, redis_url, github_oauth_client_secret="wrong"
    ) as client:
        github.standin.next_oauth_user = OCTOCAT
        answer = await client.get(await through_github(client))
        assert answer.status_code == 400
        assert "GitHub refused the sign-in (incorrect_client_credentials)" in answer.text
        assert await who(client) == 401


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example/x", "/\\evil.example", "evil.example"],
    ids=["scheme-relative", "absolute", "backslash", "relative"],
)
async def test_next_never_leaves_the_server(client, github, target):
    answer = await sign_in_with_github(client, github, OCTOCAT, next_path=target)
    assert (answer.status_code, answer.headers["location"]) == (303, "/")


async def test_a_disabled_user_cannot_sign_in(client, github):
    await sign_in_with_github(client, github, OCTOCAT)
    sessions = client.app.state.context.sessions  # type: ignore[attr-defined]
    user = await accounts.find_user(sessions, "github:octocat")
    await accounts.set_disabled(sessions, user, disabled=True)
    client.cookies.clear()
    answer = await sign_in_with_github(client, github, OCTOCAT)
    assert answer.status_code == 403
    assert "the labci account of GitHub user octocat is disabled" in answer.text
    assert await who(client) == 401


async def test_without_an_oauth_app_the_routes_are_not_there(github, database_url, redis_url):
    async with labci_with_github(
        github,
        database_url,
        redis_url,
        github_oauth_client_id=None,
        github_oauth_client_secret=None,
    ) as client:
        assert (await client.get("/login/github")).status_code == 404
        assert (await client.get("/login/github/callback?code=x&state=y")).status_code == 404
        assert "Sign in with GitHub" not in (await client.get("/login")).text
    assert github.standin.requests == []
