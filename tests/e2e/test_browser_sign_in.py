"""The sign-in pages in a real browser (Debian's chromium, driven by Playwright) against a real
`labci serve`: signing in and out, the account page's personal API tokens, the CSRF token on
every form, and what the browser itself reports (console errors, Content-Security-Policy
violations). Playwright's auto-waiting (`expect`, locators) replaces every sleep."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect

from helpers.browsing import VIOLATIONS_KEY, Person
from helpers.people import PASSWORD
from helpers.stack import Stack

pytestmark = pytest.mark.e2e

CSRF_REFUSED = {"error": "CSRF token missing or wrong: reload the page and try again"}
NOT_SIGNED_IN = {"error": "sign in, or send a personal API token (Authorization: Bearer)"}


@pytest.fixture
def ada(stack: Stack, open_tab: Callable[[], Person]) -> Person:
    """A running server, a local account `ada` (no tokens yet), and a tab."""
    stack.start_server()
    stack.cli("users", "create", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    return open_tab()


def signed_in_as(person: Person, login: str) -> None:
    expect(person.page.locator("nav")).to_contain_text(f"signed in as {login}")


def who_is(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(stack.url + "/api/v1/user", headers={"authorization": f"Bearer {token}"})


def test_sign_in_then_make_use_and_revoke_a_token_then_sign_out(ada: Person, stack: Stack):
    page = ada.page
    ada.sign_in("ada", PASSWORD, path="/login?next=/account")
    expect(page).to_have_url(f"{stack.url}/account")  # back where they came from
    expect(page.get_by_role("heading", level=1)).to_have_text("ada")
    expect(page.get_by_text("Local account.")).to_be_visible()
    signed_in_as(ada, "ada")

    page.get_by_label("Name").fill("laptop CLI")
    page.get_by_label("Scope").select_option("read")
    page.get_by_label("Expires in").select_option("30")
    page.get_by_role("button", name="Make token").click()
    shown = page.locator("#new-token")
    expect(shown).to_have_text(re.compile(r"^labci_pat_\S+$"))
    secret = shown.inner_text()

    page.goto("/account")  # opened again: the secret is gone for good
    expect(page.get_by_role("heading", level=1)).to_have_text("ada")
    expect(shown).to_have_count(0)
    assert secret not in page.content()
    row = page.get_by_role("row").filter(has_text="laptop CLI")
    name, scope, made, expires, last_used, action = row.get_by_role("cell").all_inner_texts()
    assert (name, scope, last_used, action) == ("laptop CLI", "read", "never", "revoke")
    minutes = "%Y-%m-%d %H:%M UTC"
    assert datetime.strptime(expires, minutes) - datetime.strptime(made, minutes) == timedelta(
        days=30
    )

    me = who_is(stack, secret)
    assert me.status_code == 200, me.text
    assert me.json() | {"login": "ada", "via": "token", "scope": "read"} == me.json()

    row.get_by_role("button", name="revoke").click()
    expect(page).to_have_url(f"{stack.url}/account")
    expect(row.get_by_role("cell").nth(5)).to_have_text(
        re.compile(r"^revoked \d{4}-\d\d-\d\d \d\d:\d\d UTC$")
    )
    assert who_is(stack, secret).status_code == 401

    page.get_by_role("button", name="sign out").click()
    expect(page).to_have_url(f"{stack.url}/")
    expect(page.get_by_role("link", name="sign in")).to_be_visible()
    # Signed out, a page that needs sign-in sends the browser to sign in, and back after.
    page.goto("/account")
    expect(page).to_have_url(f"{stack.url}/login?next=/account")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    assert ada.page_errors() == []
    assert ada.violations() == []


def test_a_wrong_password_shows_the_error_and_signs_nobody_in(ada: Person):
    page = ada.page
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        ada.sign_in("ada", "not her password")
    assert answer.value.status == 401
    expect(page.locator(".error")).to_have_text("wrong login or password")
    expect(page.get_by_role("link", name="sign in")).to_be_visible()
    expect(page.get_by_label("Login")).to_be_visible()

    behind_the_page = page.request.get("/api/v1/user")  # the tab's own cookies
    assert (behind_the_page.status, behind_the_page.json()) == (401, NOT_SIGNED_IN)
    assert ada.page_errors() == [ada.refused("/login", "401 (Unauthorized)")]
    assert ada.violations() == []

    # Those two checks can fail: an inline script added to the page is refused, and heard.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.ran = true'; document.body.append(s); }"
        )
    page.wait_for_function(f"() => sessionStorage.getItem('{VIOLATIONS_KEY}') !== null")
    assert ada.violations() == [f"script-src-elem inline on {ada.url}/login"]
    assert page.evaluate("window.ran") is None


def token_names(person: Person) -> list[str]:
    rows = person.page.get_by_role("row").filter(has=person.page.get_by_role("cell"))
    return [row.get_by_role("cell").first.inner_text() for row in rows.all()]


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    ada: Person, stack: Stack, open_tab: Callable[[], Person]
):
    page = ada.page
    ada.sign_in("ada", PASSWORD, path="/login?next=/account")
    expect(page).to_have_url(f"{stack.url}/account")
    expect(page.get_by_text("No tokens yet.")).to_be_visible()

    # A script posting the form with the session cookie but no token (as another site would).
    posted = page.evaluate(
        """async () => {
            const r = await fetch("/account/tokens", {method: "POST", body: new URLSearchParams(
                {name: "by script", scope: "admin", expires_in_days: "366"})});
            return {status: r.status, body: await r.text()};
        }"""
    )
    assert (posted["status"], json.loads(posted["body"])) == (403, CSRF_REFUSED)

    # The page's own form with its hidden field removed.
    page.locator("form[action='/account/tokens'] input[name=csrf_token]").evaluate(
        "e => e.remove()"
    )
    page.get_by_label("Name").fill("without csrf")
    with page.expect_response(f"{stack.url}/account/tokens") as answer:
        page.get_by_role("button", name="Make token").click()
    assert (answer.value.status, answer.value.json()) == (403, CSRF_REFUSED)

    page.goto("/account")
    expect(page.get_by_role("heading", level=1)).to_have_text("ada")
    expect(page.get_by_text("No tokens yet.")).to_be_visible()

    page.locator("form[action='/logout'] input[name=csrf_token]").evaluate("e => e.remove()")
    with page.expect_response(f"{stack.url}/logout") as answer:
        page.get_by_role("button", name="sign out").click()
    assert (answer.value.status, answer.value.json()) == (403, CSRF_REFUSED)
    page.goto("/account")
    signed_in_as(ada, "ada")  # still signed in

    assert ada.page_errors() == [
        ada.refused("/account/tokens", "403 (Forbidden)"),
        ada.refused("/account/tokens", "403 (Forbidden)"),
        ada.refused("/logout", "403 (Forbidden)"),
    ]
    assert ada.violations() == []

    # Nobody can sign a browser in without the login form's token either.
    other = open_tab()
    other.page.goto("/login")
    other.page.locator("input[name=csrf_token]").evaluate("e => e.remove()")
    with other.page.expect_response(f"{stack.url}/login") as answer:
        other.sign_in("ada", PASSWORD, path=None)
    assert (answer.value.status, answer.value.json()) == (403, CSRF_REFUSED)
    assert other.page.request.get("/api/v1/user").status == 401


def test_reloading_the_new_token_page_makes_no_second_token(ada: Person, stack: Stack):
    page = ada.page
    ada.sign_in("ada", PASSWORD, path="/login?next=/account")
    expect(page).to_have_url(f"{stack.url}/account")
    page.get_by_label("Name").fill("laptop CLI")
    page.get_by_role("button", name="Make token").click()
    expect(page.locator("#new-token")).to_have_text(re.compile(r"^labci_pat_\S+$"))
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("ada")
    assert token_names(ada) == ["laptop CLI"]
