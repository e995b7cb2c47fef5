"""The stand-in's OAuth web flow, `GET /user` and collaborator permissions."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from forge_standin import OpenAPIChecker, Standin

from ._support import API

CLIENT_ID, CLIENT_SECRET = "Iv1.standin", "standin-secret"
CALLBACK = "http://labci.test/login/github/callback"


@pytest.fixture
async def web(standin: Standin):
    standin.register_oauth_app(CLIENT_ID, CLIENT_SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=standin.app), base_url=API) as c:
        yield c


async def authorize(web: httpx.AsyncClient, state: str = "s-1") -> dict[str, list[str]]:
    params = {"client_id": CLIENT_ID, "redirect_uri": CALLBACK, "state": state, "scope": ""}
    answer = await web.get("/login/oauth/authorize", params=params)
    assert answer.status_code == 302
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == CALLBACK
    return parse_qs(target.query)


async def exchange(web: httpx.AsyncClient, code: str, *, secret: str = CLIENT_SECRET) -> dict:
    form = {"client_id": CLIENT_ID, "client_secret": secret, "code": code}
    answer = await web.post(
        "/login/oauth/access_token", data=form, headers={"accept": "application/json"}
    )
    assert answer.status_code == 200  # GitHub answers its refusals with 200 too
    return dict(answer.json())


async def test_the_web_flow_gives_a_token_that_reads_the_person(
    web: httpx.AsyncClient, standin: Standin, checker: OpenAPIChecker
) -> None:
    standin.next_oauth_user = ("octocat", 583231)
    redirect = await authorize(web)
    assert redirect["state"] == ["s-1"]
    (code,) = redirect["code"]
    token = await exchange(web, code)
    assert (token["token_type"], token["scope"]) == ("bearer", "")
    me = await web.get("/user", headers={"authorization": f"Bearer {token['access_token']}"})
    assert (me.json()["login"], me.json()["id"]) == ("octocat", 583231)
    assert checker.response_errors("GET", "/user", 200, me.json()) == []
    assert await exchange(web, code) == {  # a code is good once
        "error": "bad_verification_code",
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps/"
        "troubleshooting-oauth-app-access-token-request-errors#bad-verification-code",
    }
    assert standin.violations == []


async def test_wrong_secret_form_answer_and_refusal(
    web: httpx.AsyncClient, standin: Standin
) -> None:
    standin.next_oauth_user = ("octocat", 583231)
    (code,) = (await authorize(web))["code"]
    assert (await exchange(web, code, secret="nope"))["error"] == "incorrect_client_credentials"
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code}
    plain = await web.post("/login/oauth/access_token", data=form)
    assert parse_qs(plain.text)["token_type"] == ["bearer"]  # no Accept: form-encoded
    standin.deny_next_oauth()
    refused = await authorize(web, state="s-2")
    assert (refused["error"], refused["state"]) == (["access_denied"], ["s-2"])
    assert "code" not in refused
    assert "code" in await authorize(web, state="s-3")  # refused once only
    unknown = await web.get("/login/oauth/authorize", params={"client_id": "other"})
    assert unknown.status_code == 404
    assert standin.violations == []


@pytest.mark.parametrize(
    ("role", "permission", "push"),
    [("admin", "admin", True), ("maintain", "write", True), ("triage", "read", False)],
    ids=["admin", "maintain", "triage"],
)
async def test_collaborator_permission_answers_from_the_table(
    client: httpx.AsyncClient,
    standin: Standin,
    checker: OpenAPIChecker,
    role: str,
    permission: str,
    push: bool,
) -> None:
    standin.set_permission("acme", "widgets", "Alice", role)
    path = "/repos/acme/widgets/collaborators/alice/permission"
    answer = await client.get(path)
    body = answer.json()
    assert (body["permission"], body["role_name"]) == (permission, role)
    assert body["user"]["permissions"]["push"] is push
    assert checker.response_errors("GET", path, 200, body) == []
    stranger = await client.get("/repos/acme/widgets/collaborators/bob/permission")
    assert stranger.status_code == 404
    standin.set_permission("acme", "widgets", "alice", None)
    assert (await client.get(path)).status_code == 404
    assert len(standin.permission_requests("acme", "widgets", "alice")) == 2
    assert standin.violations == []
