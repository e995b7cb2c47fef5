"""Errors are pages for browsers and JSON for everyone else (issue 13, item 7): a missing
run, an unknown address and a malformed filter, as a browser and as a script asks."""

from __future__ import annotations

import httpx
import pytest
from bs4 import BeautifulSoup

BROWSER = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(site) -> httpx.AsyncClient:
    return site.client


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/runs/999", 404, "no such thing here, or you may not see it"),
        ("/no/such/page", 404, "Not Found"),
        ("/runs?state=exploded", 400, "state must be one of"),
    ],
)
async def test_a_browser_gets_a_page_and_a_script_gets_json(client, path, status, message):
    page = await client.get(path, headers=BROWSER)
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.h1.get_text().startswith(f"{status} · ")
    assert message in soup.select_one("p.error").get_text()
    assert soup.select_one('nav a[href="/runs"]') is not None

    script = await client.get(path)
    assert script.status_code == status
    assert script.headers["content-type"] == "application/json"
    body = script.json()
    assert message in (body.get("error") or body.get("detail"))


async def test_the_api_answers_json_even_to_a_browser(client):
    response = await client.get("/api/v1/runs/999", headers=BROWSER)
    assert response.status_code == 404
    assert response.json() == {"error": "no such thing here, or you may not see it (sign in?)"}


async def test_a_page_cannot_be_injected_through_the_message(client):
    page = await client.get("/runs?state=<script>alert(1)</script>", headers=BROWSER)
    assert page.status_code == 400
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)" in page.text
