"""The secrets routes through the real application (ASGI), a real database and Redis: who may
set, list and delete them, that no answer ever carries a value, and clear 4xx answers for
bad names, short values and bodies over the cap."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text

from helpers.people import bearer, make_token, make_user
from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.auth import accounts
from labci_server.db.migrate import upgrade
from labci_server.db.models import Repository
from labci_server.http.caps import SECRET_BYTES

VALUE = "s3cr3t-value-for-the-api"
REPO_SECRETS = "/api/v1/repos/octo/{}/secrets"


@pytest.fixture
async def api(database_url, redis_url, request):
    overrides = getattr(request, "param", {})
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url, **overrides))
    async with app.router.lifespan_context(app):
        sessions = app.state.context.sessions
        async with sessions() as session, session.begin():
            for name, private in (("public", False), ("private", True)):
                session.add(
                    Repository(
                        provider="github",
                        full_name=f"octo/{name}",
                        clone_url=f"https://x.invalid/octo/{name}.git",
                        private=private,
                    )
                )
        tokens = {}
        for role in ("outsider", "reader", "writer", "owner", "root"):
            user = await make_user(sessions, role, admin=role == "root")
            tokens[role] = bearer(await make_token(sessions, user))
            level = {"reader": "read", "writer": "write", "owner": "admin"}.get(role)
            for name in ("public", "private") if level else ():
                repo = await accounts.find_repository_named(sessions, f"octo/{name}")
                await accounts.grant(sessions, repo=repo, user=user, level=level)
        tokens["anonymous"] = {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as client:
            client.tokens = tokens  # type: ignore[attr-defined]
            client.sessions = sessions  # type: ignore[attr-defined]
            yield client


async def stored_text(client) -> str:
    """Every column of every stored secret, as text."""
    async with client.sessions() as session:
        connection = await session.connection()
        rows = (await connection.execute(text("SELECT * FROM secrets"))).all()
    return json.dumps([[str(v) for v in row] for row in rows])


async def test_a_repository_admin_sets_lists_and_deletes_and_no_answer_has_the_value(api):
    owner = api.tokens["owner"]
    url = REPO_SECRETS.format("private")
    made = await api.put(f"{url}/deploy_key", json={"value": VALUE}, headers=owner)
    assert made.status_code == 201
    assert made.json()["name"] == "DEPLOY_KEY"
    assert made.json()["updated_by"] == "owner"
    changed = await api.put(f"{url}/DEPLOY_KEY", json={"value": VALUE + "2"}, headers=owner)
    assert (changed.status_code, changed.json()["created"]) == (200, False)
    listed = await api.get(url, headers=owner)
    assert [(s["name"], s["updated_by"]) for s in listed.json()] == [("DEPLOY_KEY", "owner")]
    assert listed.json()[0]["updated_at"] >= listed.json()[0]["created_at"]
    for answer in (made, changed, listed):
        assert VALUE not in answer.text
    assert VALUE not in await stored_text(api)
    assert "DEPLOY_KEY" in await stored_text(api)
    gone = await api.delete(f"{url}/deploy_key", headers=owner)
    assert gone.json() == {"deleted": "DEPLOY_KEY"}
    assert (await api.get(url, headers=owner)).json() == []
    again = await api.delete(f"{url}/deploy_key", headers=owner)
    assert again.status_code == 404
    assert again.json()["error"] == "octo/private has no secret DEPLOY_KEY"


@pytest.mark.parametrize(
    ("role", "kind", "status"),
    [
        ("anonymous", "public", 401),
        ("anonymous", "private", 404),
        ("outsider", "public", 403),
        ("outsider", "private", 404),
        ("reader", "private", 403),
        ("writer", "public", 403),
        ("writer", "private", 403),
        ("owner", "private", 201),
        ("root", "public", 201),
    ],
    ids=lambda v: str(v),
)
async def test_only_admins_of_the_repository_may_set_its_secrets(api, role, kind, status):
    url = REPO_SECRETS.format(kind)
    put = await api.put(f"{url}/X_SECRET", json={"value": VALUE}, headers=api.tokens[role])
    listed = await api.get(url, headers=api.tokens[role])
    assert put.status_code == status
    assert listed.status_code == (200 if status == 201 else status)
    if status == 403:
        assert "not admin" in put.json()["error"]
    if status == 404:  # a private repository a caller may not read does not exist for them
        unknown = await api.get(REPO_SECRETS.format("nothing-here"), headers=api.tokens[role])
        assert (put.json(), listed.json()) == (unknown.json(), unknown.json())
    assert ("X_SECRET" in await stored_text(api)) is (status == 201)


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("owner", 403), ("root", 201)], ids=str
)
async def test_server_wide_secrets_are_for_server_administrators(api, role, status):
    headers = api.tokens[role]
    put = await api.put("/api/v1/secrets/SHARED", json={"value": VALUE}, headers=headers)
    listed = await api.get("/api/v1/secrets", headers=headers)
    assert put.status_code == status
    assert listed.status_code == (200 if status == 201 else status)
    if status == 201:
        assert [s["name"] for s in listed.json()] == ["SHARED"]
        assert VALUE not in put.text + listed.text
        deleted = await api.delete("/api/v1/secrets/shared", headers=headers)
        assert deleted.json() == {"deleted": "SHARED"}


async def test_an_administrators_write_scoped_token_cannot_set_secrets(api):
    sessions = api.sessions
    root = await accounts.find_user(sessions, "root")
    narrow = bearer(await make_token(sessions, root, scope="write"))
    for url in ("/api/v1/secrets/X_SECRET", f"{REPO_SECRETS.format('public')}/X_SECRET"):
        refused = await api.put(url, json={"value": VALUE}, headers=narrow)
        assert refused.status_code == 403
    assert await stored_text(api) == "[]"


@pytest.mark.parametrize(
    ("name", "body", "status", "message"),
    [
        ("SHORT", {"value": "1234567"}, 400, "at least 8 characters"),
        ("9LIVES", {"value": VALUE}, 400, "'9LIVES' is not a secret name"),
        ("LABCI_TOKEN", {"value": VALUE}, 400, "names starting with LABCI_ are reserved"),
        ("NUL", {"value": "12345678\u0000"}, 400, "NUL character"),
        ("BIG", {"value": "x" * (48 * 1024 + 1)}, 400, "at most 48 KiB"),
        ("NOVALUE", {}, 422, "value: Field required"),
        ("EXTRA", {"value": VALUE, "scope": "server"}, 422, "scope: Extra inputs"),
        ("NUMBER", {"value": 12345678}, 422, "value: Input should be a valid string"),
    ],
    ids=lambda v: str(v)[:20],
)
async def test_bad_input_is_a_clear_4xx(api, name, body, status, message):
    url = f"{REPO_SECRETS.format('public')}/{name}"
    response = await api.put(url, json=body, headers=api.tokens["owner"])
    assert response.status_code == status
    assert message in response.json()["error"]
    assert await stored_text(api) == "[]"


async def test_a_body_over_the_cap_is_refused_before_it_is_read(api):
    url = f"{REPO_SECRETS.format('public')}/HUGE"
    body = json.dumps({"value": "x" * SECRET_BYTES})
    response = await api.put(url, content=body, headers=api.tokens["owner"])
    assert response.status_code == 413
    assert f"at most {SECRET_BYTES} bytes" in response.json()["error"]
    # The cap leaves room for a 48 KiB value with every character JSON-escaped.
    escaped = json.dumps({"value": "\u0001" * (48 * 1024)})
    assert len(escaped) < SECRET_BYTES
    fits = await api.put(url, content=escaped, headers=api.tokens["owner"])
    assert fits.status_code == 201


@pytest.mark.parametrize("api", [{"secret_key": None}], indirect=True)
async def test_without_a_key_setting_a_secret_is_a_409_that_says_what_to_do(api):
    response = await api.put(
        "/api/v1/secrets/SHARED", json={"value": VALUE}, headers=api.tokens["root"]
    )
    assert response.status_code == 409
    assert "LABCI_SECRET_KEY is not set" in response.json()["error"]
    assert "labci secrets generate-key" in response.json()["error"]
    listed = await api.get("/api/v1/secrets", headers=api.tokens["root"])
    assert listed.json() == []
