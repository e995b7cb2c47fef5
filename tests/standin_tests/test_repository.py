"""`GET /repos/{owner}/{repo}` and `GET /repos/{owner}/{repo}/installation` on the stand-in:
GitHub's shapes, the visibility a test sets, and the App JWT the installation lookup needs."""

from __future__ import annotations

import gidgethub.apps
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from forge_standin import OpenAPIChecker, Standin

from ._support import Repo

APP_ID = 4713
INSTALLATION = 11


def signed(key: rsa.RSAPrivateKey) -> str:
    """`Bearer <the App's JWT>`, as gidgethub makes it."""
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return "Bearer " + gidgethub.apps.get_jwt(app_id=str(APP_ID), private_key=private)


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """The App's key, and another one."""
    return tuple(  # type: ignore[return-value]
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)
    )


@pytest.fixture
def app(standin: Standin, keys) -> Standin:
    public = (
        keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    standin.register_app(APP_ID, public.decode())
    standin.install_app(APP_ID, INSTALLATION, ["acme/widgets"])
    return standin


async def test_repository_has_githubs_shape_and_the_set_visibility(
    client: httpx.AsyncClient, standin: Standin, repo: Repo, checker: OpenAPIChecker
) -> None:
    first = await client.get("/repos/acme/widgets")
    assert checker.response_errors("GET", "/repos/acme/widgets", 200, first.json()) == []
    body = first.json()
    assert (body["full_name"], body["private"], body["visibility"]) == (
        "acme/widgets",
        False,
        "public",
    )
    assert (body["clone_url"], body["default_branch"]) == (repo.bare.bare.as_uri(), "main")
    standin.set_visibility("ACME", "Widgets", "internal")
    standin.reset()  # visibility is set-up: it stays
    second = (await client.get("/repos/acme/widgets")).json()
    assert (second["private"], second["visibility"]) == (True, "internal")
    missing = await client.get("/repos/acme/nothing")
    assert missing.status_code == 404
    assert standin.violations == []


async def test_repository_installation_needs_the_apps_jwt(
    client: httpx.AsyncClient, app: Standin, keys, checker: OpenAPIChecker
) -> None:
    app_key, other_key = keys
    url = "/repos/acme/widgets/installation"
    found = await client.get(url, headers={"Authorization": signed(app_key)})
    assert found.status_code == 200
    assert checker.response_errors("GET", url, 200, found.json()) == []
    assert (found.json()["id"], found.json()["app_id"]) == (INSTALLATION, APP_ID)
    wrong_key = await client.get(url, headers={"Authorization": signed(other_key)})
    assert wrong_key.status_code == 401
    plain_token = await client.get(url)  # the client's own `token ...` header
    assert plain_token.status_code == 401
    elsewhere = await client.get(
        "/repos/acme/other/installation", headers={"Authorization": signed(app_key)}
    )
    assert elsewhere.status_code == 404
    assert app.violations == []


@pytest.mark.parametrize("visibility", ["secret", ""])
def test_unknown_visibility_is_refused(standin: Standin, visibility: str) -> None:
    with pytest.raises(ValueError, match="visibility must be one of"):
        standin.set_visibility("acme", "widgets", visibility)
