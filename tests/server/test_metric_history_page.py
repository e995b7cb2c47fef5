"""A metric's history page (issue 13, item 4): the runs' means with their spread as a
table (what a reader without script gets), the chart's data as a JSON block that no value
can break out of, change points listed, and a private repository as hidden as its API."""

from __future__ import annotations

import json

import httpx
import pytest
from bs4 import BeautifulSoup

from helpers.history import add_measured_run
from labci_server.db.models import Repository

BROWSER = {"accept": "text/html"}
PATH = "/repos/octo/exp/metrics/history?workflow=train&job=fit&metric=acc"


@pytest.fixture
def client(site) -> httpx.AsyncClient:
    site.client.app = site.app  # type: ignore[attr-defined]
    return site.client


async def repository(client, name: str, *, private: bool = False) -> int:
    async with client.app.state.context.sessions() as session, session.begin():
        repo = Repository(provider="github", full_name=name, clone_url="x", private=private)
        session.add(repo)
        await session.flush()
        return repo.id or 0


async def test_runs_means_and_spread_as_a_table_and_the_charts_data(client):
    repo_id = await repository(client, "octo/exp")
    sessions = client.app.state.context.sessions
    first = await add_measured_run(sessions, repo_id, serial=1, values=(0.90, 0.92))
    second = await add_measured_run(sessions, repo_id, serial=2, values=(0.95,))
    page = await client.get(PATH, headers=BROWSER)
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    assert soup.h1.get_text() == "acc on main"
    rows = [
        [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        for tr in soup.select("table.history tbody tr")
    ]
    assert [r[:4] for r in rows] == [
        [f"#{second}", f"{2:040x}"[:7], "0.95", "1"],
        [f"#{first}", f"{1:040x}"[:7], "0.91 ± 0.0141", "2"],
    ]
    data = json.loads(soup.find("script", id="history").string)
    api = await client.get(PATH.replace("/repos/", "/api/v1/repos/").replace("/history", ""))
    assert data == api.json()  # the chart draws exactly what the API says


async def test_no_value_can_close_the_data_block(client):
    await repository(client, "octo/exp")
    page = await client.get(
        "/repos/octo/exp/metrics/history?workflow=train&job=fit&metric=</script><b>x",
        headers=BROWSER,
    )
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    block = soup.find("script", id="history")
    assert json.loads(block.string)["metric"] == "</script><b>x"
    assert soup.find("b") is None
    assert "No run on main has reported" in page.text


async def test_a_private_repository_is_hidden_as_its_api_is(client):
    await repository(client, "octo/secret", private=True)
    page = await client.get(PATH.replace("exp", "secret"))
    assert page.status_code == 404


async def test_the_run_page_links_each_metric_to_its_history(client):
    repo_id = await repository(client, "octo/exp")
    run_id = await add_measured_run(
        client.app.state.context.sessions, repo_id, serial=3, values=(0.9,)
    )
    page = BeautifulSoup((await client.get(f"/runs/{run_id}", headers=BROWSER)).text, "html.parser")
    link = page.find("a", string="acc")
    assert link["href"] == PATH
    followed = await client.get(link["href"], headers=BROWSER)
    assert followed.status_code == 200


async def test_a_pull_requests_runs_are_overlaid_and_its_run_pages_link_so(client):
    repo_id = await repository(client, "octo/exp")
    sessions = client.app.state.context.sessions
    await add_measured_run(sessions, repo_id, serial=1, values=(0.90,))
    tried = await add_measured_run(sessions, repo_id, serial=2, values=(0.93, 0.95),
                                   branch="tune", pr=7)  # fmt: skip
    await add_measured_run(sessions, repo_id, serial=3, values=(0.91,))
    other = await add_measured_run(sessions, repo_id, serial=4, values=(0.5,), branch="x", pr=8)
    page = BeautifulSoup((await client.get(f"/runs/{tried}", headers=BROWSER)).text,
                         "html.parser")  # fmt: skip
    link = page.find("a", string="acc")
    assert link["href"] == PATH.replace("workflow=train", "workflow=train&pr=7")
    soup = BeautifulSoup((await client.get(link["href"], headers=BROWSER)).text, "html.parser")
    assert soup.h1.get_text() == "acc on main and pull request #7"
    branch = [tr["data-run"] for tr in soup.select("table.history:not(.overlay) tbody tr")]
    overlay = [[td.get_text(" ", strip=True) for td in tr.find_all("td")][:4]
               for tr in soup.select("table.overlay tbody tr")]  # fmt: skip
    assert len(branch) == 2  # main's runs only
    assert overlay == [[f"#{tried}", f"{2:040x}"[:7], "0.94 ± 0.0141", "2"]]
    data = json.loads(soup.find("script", id="history").string)
    assert data["pull_request"] == 7
    assert [p["run_id"] for p in data["pull_request_points"]] == [tried]
    assert other not in [p["run_id"] for p in data["pull_request_points"] + data["points"]]
    plain = await client.get(PATH.replace("/repos/", "/api/v1/repos/").replace("/history", ""))
    assert plain.json()["pull_request_points"] is None  # only when asked for
