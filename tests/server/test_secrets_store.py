"""The secrets store on a real database: what is stored (ciphertext only), the rules for
names and values, the cap per scope, key rotation, and errors that name LABCI_SECRET_KEY."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

from helpers.server import server_context, test_settings
from labci_server.db.models import Repository
from labci_server.errors import BadRequest, Conflict, NoSecretKey, NotFound, SecretKeyError
from labci_server.secrets import (
    MAX_SECRET_BYTES,
    MAX_SECRETS_PER_SCOPE,
    MIN_SECRET_LENGTH,
    Scope,
    check_stored_secrets,
    delete_secret,
    generate_key,
    list_secrets,
    load_keyring,
    put_secret,
    rotate_key,
)

VALUE = "hunter2-but-longer-🔑"


async def raw_rows(sc) -> list[dict]:
    """The table as the database holds it, read with plain SQL."""
    async with sc.sessions() as session:
        connection = await session.connection()
        result = await connection.execute(text("SELECT * FROM secrets ORDER BY id"))
        return [dict(row._mapping) for row in result]


async def add_repo(sc, name: str = "octo/exp") -> Repository:
    async with sc.sessions() as session, session.begin():
        repo = Repository(provider="github", full_name=name, clone_url=f"https://x.invalid/{name}")
        session.add(repo)
    return repo


def with_key(settings, key: str | None):
    return settings.model_copy(update={"secret_key": SecretStr(key) if key else None})


async def test_only_ciphertext_is_stored_and_the_listing_has_no_value(database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc)
        scope = Scope.of_repository(repo)
        made = await put_secret(
            sc.settings, sc.sessions, scope, name="api_token", value=VALUE, by="ada"
        )
        assert made["name"] == "API_TOKEN"  # case-insensitive, kept in upper case
        assert made["created"] is True
        again = await put_secret(
            sc.settings, sc.sessions, scope, name="API_TOKEN", value=VALUE + "!", by="grace"
        )
        assert again["created"] is False
        (row,) = await raw_rows(sc)
        assert (row["scope"], row["repository_id"], row["name"]) == (
            f"repository:{repo.id}",
            repo.id,
            "API_TOKEN",
        )
        assert row["updated_by"] == "grace"
        stored = " ".join(str(v) for v in row.values())
        for form in (VALUE, base64.b64encode(VALUE.encode()).decode(), VALUE.encode().hex()):
            assert form not in stored
        keyring = load_keyring(sc.settings.secret_key)
        assert keyring.decrypt(row["ciphertext"], what="test") == VALUE + "!"
        listed = await list_secrets(sc.sessions, scope)
        assert listed == [
            {
                "name": "API_TOKEN",
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
                "updated_by": "grace",
            }
        ]
        assert await list_secrets(sc.sessions, Scope.server()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("1ST", "not a secret name"),
        ("has-dash", "not a secret name"),
        ("spaced name", "not a secret name"),
        ("ÜBER", "not a secret name"),
        ("labci_token", "names starting with LABCI_ are reserved"),
        ("GITHUB_TOKEN", "names starting with GITHUB_ are reserved"),
        ("X" * 101, "at most 100 characters"),
    ],
    ids=["empty", "digit-first", "dash", "space", "non-ascii", "labci", "github", "long"],
)
async def test_bad_names_are_refused_clearly(database_url, redis_url, name, message):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        with pytest.raises(BadRequest, match=message):
            await put_secret(sc.settings, sc.sessions, Scope.server(), name=name, value=VALUE)
        assert await raw_rows(sc) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("x" * (MIN_SECRET_LENGTH - 1), "at least 8 characters"),
        ("  abc  \n   ", "at least 8 characters"),
        ("12345678\x00", "NUL"),
        ("é" * (MAX_SECRET_BYTES // 2 + 1), "at most 48 KiB"),
        ("\ud800" * 10, "not valid Unicode"),
    ],
    ids=["seven-chars", "mostly-space", "nul", "over-48-KiB-in-utf8", "lone-surrogate"],
)
async def test_bad_values_are_refused_without_being_quoted(database_url, redis_url, value, message):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        with pytest.raises(BadRequest, match=message) as refused:
            await put_secret(sc.settings, sc.sessions, Scope.server(), name="X", value=value)
        assert value.strip() not in str(refused.value)
        assert await raw_rows(sc) == []


async def test_the_shortest_and_longest_values_are_kept(database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        for name, value in (("SHORT", "s" * MIN_SECRET_LENGTH), ("LONG", "l" * MAX_SECRET_BYTES)):
            await put_secret(sc.settings, sc.sessions, Scope.server(), name=name, value=value)
        keyring = load_keyring(sc.settings.secret_key)
        values = {r["name"]: keyring.decrypt(r["ciphertext"], what="") for r in await raw_rows(sc)}
        assert values == {"SHORT": "s" * MIN_SECRET_LENGTH, "LONG": "l" * MAX_SECRET_BYTES}


async def test_a_scope_holds_at_most_100_secrets_but_each_can_be_replaced(database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = await add_repo(sc)
        scope = Scope.of_repository(repo)
        for n in range(MAX_SECRETS_PER_SCOPE):
            await put_secret(sc.settings, sc.sessions, scope, name=f"S{n}", value=VALUE, by="a")
        with pytest.raises(Conflict, match="octo/exp has 100 secrets, the most it may have"):
            await put_secret(sc.settings, sc.sessions, scope, name="ONE_MORE", value=VALUE)
        replaced = await put_secret(sc.settings, sc.sessions, scope, name="S7", value=VALUE * 2)
        assert replaced["created"] is False
        # Another scope has a cap of its own.
        await put_secret(sc.settings, sc.sessions, Scope.server(), name="ONE_MORE", value=VALUE)
        assert len(await raw_rows(sc)) == MAX_SECRETS_PER_SCOPE + 1


async def test_delete_removes_the_row_and_an_unknown_name_is_a_404(database_url, redis_url):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        await put_secret(sc.settings, sc.sessions, Scope.server(), name="GONE_SOON", value=VALUE)
        assert await delete_secret(sc.sessions, Scope.server(), name="gone_soon") == "GONE_SOON"
        assert await raw_rows(sc) == []
        with pytest.raises(NotFound, match="the server has no secret GONE_SOON"):
            await delete_secret(sc.sessions, Scope.server(), name="GONE_SOON")


async def test_without_a_key_nothing_is_stored_and_the_error_names_the_setting(
    database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url, secret_key=None)) as sc:
        with pytest.raises(NoSecretKey, match="LABCI_SECRET_KEY is not set") as refused:
            await put_secret(sc.settings, sc.sessions, Scope.server(), name="X", value=VALUE)
        assert refused.value.status_code == 409
        assert await list_secrets(sc.sessions, Scope.server()) == []
        assert await check_stored_secrets(sc.settings, sc.sessions) == 0  # nothing stored: fine


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("not-a-fernet-key", "key 1 of 1 is not a Fernet key"),
        (f"{Fernet.generate_key().decode()},short", "key 2 of 2 is not a Fernet key"),
        (f"{Fernet.generate_key().decode()},,", "key 2 of 3 is empty"),
    ],
    ids=["garbage", "second-bad", "empty-part"],
)
def test_a_malformed_key_is_named_by_position_never_shown(setting, message):
    with pytest.raises(SecretKeyError, match=message) as refused:
        load_keyring(SecretStr(setting))
    assert str(refused.value).startswith("LABCI_SECRET_KEY: ")
    for part in setting.split(","):
        if part:
            assert part not in str(refused.value)
    assert refused.value.__cause__ is None  # the decoder's message could quote the key


def test_blank_means_unset():
    assert load_keyring(None) is None
    assert load_keyring(SecretStr(" ")) is None


async def test_rotation_re_encrypts_with_the_first_key_and_then_the_old_key_fails(
    database_url, redis_url
):
    old, new = generate_key(), generate_key()
    base = test_settings(database_url, redis_url)
    async with server_context(with_key(base, old)) as sc:
        repo = await add_repo(sc)
        await put_secret(sc.settings, sc.sessions, Scope.server(), name="A_SECRET", value=VALUE)
        await put_secret(
            sc.settings, sc.sessions, Scope.of_repository(repo), name="B_SECRET", value=VALUE * 2
        )
        before = {r["name"]: r["ciphertext"] for r in await raw_rows(sc)}

        # Before rotation a new-key-only server cannot open them, and says which.
        with pytest.raises(SecretKeyError) as wrong:
            await check_stored_secrets(with_key(base, new), sc.sessions)
        assert str(wrong.value).startswith("LABCI_SECRET_KEY: no key in it decrypts")
        assert "the server-wide secret A_SECRET" in str(wrong.value)
        assert f"secret B_SECRET of repository id {repo.id}" in str(wrong.value)

        both = with_key(base, f"{new}, {old}")
        assert await rotate_key(both, sc.sessions) == 2
        after = {r["name"]: r["ciphertext"] for r in await raw_rows(sc)}
        assert set(after) == set(before)
        assert all(after[name] != before[name] for name in after)

        new_only = load_keyring(SecretStr(new))
        assert new_only.decrypt(after["A_SECRET"], what="") == VALUE
        assert new_only.decrypt(after["B_SECRET"], what="") == VALUE * 2
        assert await check_stored_secrets(with_key(base, new), sc.sessions) == 2
        with pytest.raises(SecretKeyError, match="no key in it decrypts the server-wide secret"):
            load_keyring(SecretStr(old)).decrypt(after["A_SECRET"], what="the server-wide secret")
        with pytest.raises(SecretKeyError, match="LABCI_SECRET_KEY: no key in it decrypts"):
            await check_stored_secrets(with_key(base, old), sc.sessions)


async def test_rotation_with_keys_that_open_nothing_changes_nothing(database_url, redis_url):
    base = test_settings(database_url, redis_url)
    async with server_context(base) as sc:
        await put_secret(sc.settings, sc.sessions, Scope.server(), name="KEPT", value=VALUE)
        before = await raw_rows(sc)
        with pytest.raises(SecretKeyError, match="nothing was re-encrypted"):
            await rotate_key(with_key(base, generate_key()), sc.sessions)
        assert await raw_rows(sc) == before
        with pytest.raises(NoSecretKey, match="LABCI_SECRET_KEY is not set"):
            await rotate_key(with_key(base, None), sc.sessions)


async def test_a_server_without_its_key_refuses_stored_secrets(database_url, redis_url):
    base = test_settings(database_url, redis_url)
    async with server_context(base) as sc:
        await put_secret(sc.settings, sc.sessions, Scope.server(), name="KEPT", value=VALUE)
        with pytest.raises(SecretKeyError, match="LABCI_SECRET_KEY is not set, but 1 secret"):
            await check_stored_secrets(with_key(base, None), sc.sessions)
