"""The runs list (issue 13, item 2) as a browser gets it: overall verdicts (a regressed run
looks failed), pull request with title, commit, who and when; filters, pages, the table
alone for htmx's refresh, and a clear 400 for a malformed filter."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import ContextVerdict, Event, Repository, Run

SHA = "c0ffee" + "0" * 34
HTML = {"accept": "text/html"}


@dataclass
class Lab:
    client: httpx.AsyncClient
    sessions: Any
    repo_id: int = 0
    count: int = 0

    async def run(
        self,
        *,
        state: str = "finished",
        conclusion: str | None = "success",
        verdict: tuple[str, str] | None = None,
        pr: int | None = None,
        title: str | None = None,
        sender: str | None = None,
        workflow: str = "train",
        branch: str = "main",
    ) -> int:
        self.count += 1
        async with self.sessions() as session, session.begin():
            event = Event(
                delivery_id=f"d-{self.count}",
                provider="github",
                kind="pull_request" if pr else "push",
                repository_id=self.repo_id,
                commit_sha=SHA,
                branch=branch,
                pr_number=pr,
                state="planned",
                sender=sender,
                title=title,
            )
            session.add(event)
            await session.flush()
            started = time.time() - 125
            run = Run(
                event_id=event.id or 0,
                repository_id=self.repo_id,
                workflow_path=f".labci/{workflow}.yml",
                workflow_name=workflow,
                commit_sha=SHA,
                trigger="pull_request" if pr else "push",
                branch=branch,
                pr_number=pr,
                state=state,
                conclusion=conclusion if state == "finished" else None,
                created_at=started,
                finished_at=started + 65 if state == "finished" else None,
            )
            session.add(run)
            await session.flush()
            if verdict:
                session.add(
                    ContextVerdict(
                        run_id=run.id or 0,
                        repository_id=self.repo_id,
                        commit_sha=SHA,
                        context=f"labci/{workflow}/fit",
                        state=verdict[0],
                        description=verdict[1],
                    )
                )
            return run.id or 0

    async def page(self, path: str = "/runs", **headers: str) -> BeautifulSoup:
        response = await self.client.get(path, headers={**HTML, **headers})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        return BeautifulSoup(response.text, "html.parser")


def rows(soup: BeautifulSoup) -> dict[int, dict[str, str]]:
    """Each run's row: its cells' text by column heading."""
    heads = [th.get_text(strip=True) for th in soup.select("table.runs thead th")]
    found = {}
    for tr in soup.select("table.runs tbody tr"):
        cells = [" ".join(td.get_text(" ", strip=True).split()) for td in tr.find_all("td")]
        found[int(tr["data-run"])] = dict(zip(heads, cells, strict=True))
    return found


@pytest.fixture
async def lab(database_url, redis_url) -> AsyncIterator[Lab]:
    """Anyone's view of a public repository (who may see what: test_route_policies)."""
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        sessions = app.state.context.sessions
        async with sessions() as session, session.begin():
            repo = Repository(
                provider="github",
                full_name="octo/exp",
                clone_url="https://x.invalid/e.git",
                private=False,
            )
            session.add(repo)
            await session.flush()
            repo_id = repo.id or 0
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            yield Lab(c, sessions, repo_id)


async def test_each_run_shows_its_overall_verdict_and_where_it_came_from(lab: Lab):
    regressed = await lab.run(verdict=("failure", "accuracy −2.10 % (regression)"))
    fine = await lab.run(
        verdict=("success", "accuracy +0.40 %"), pr=7, title="Tune the LR", sender="octocat"
    )
    broken = await lab.run(conclusion="failure")
    running = await lab.run(state="running", conclusion=None)
    queued = await lab.run(state="pending", conclusion=None)
    shown = rows(await lab.page())
    assert list(shown) == [queued, running, broken, fine, regressed]  # newest first
    # Every job succeeded, but the verdict found a regression: the run looks failed.
    assert shown[regressed]["verdict"] == "failure accuracy −2.10 % (regression)"
    assert shown[fine]["verdict"] == "success accuracy +0.40 %"
    assert shown[broken]["verdict"] == "failure"
    assert shown[running]["verdict"] == "running"
    assert shown[queued]["verdict"] == "queued"
    assert shown[fine]["pull request or branch"] == "#7 Tune the LR main"
    assert shown[fine]["by"] == "octocat"
    assert shown[fine]["commit"] == SHA[:7]
    assert shown[fine]["took"] == "1 min 05 s"
    assert shown[running]["took"].endswith(" so far")
    assert shown[fine]["started"].endswith(" min ago")
    soup = await lab.page()
    links = {a.get_text(" ", strip=True): a["href"] for a in soup.select("table.runs a")}
    assert links[f"#{fine} train"] == f"/runs/{fine}"
    assert links["#7"] == "https://github.com/octo/exp/pull/7"
    assert links[SHA[:7]] == f"https://github.com/octo/exp/commit/{SHA}"
    assert soup.select_one(f'tr[data-run="{regressed}"] .badge.failure') is not None


async def test_filters_narrow_the_list_and_say_so(lab: Lab):
    regressed = await lab.run(verdict=("failure", "accuracy −2.10 % (regression)"))
    ok = await lab.run(verdict=("success", "accuracy +0.40 %"))
    pr = await lab.run(pr=7, branch="tune-lr", workflow="eval")
    running = await lab.run(state="running", conclusion=None)
    assert list(rows(await lab.page("/runs?state=failure"))) == [regressed]
    assert list(rows(await lab.page("/runs?state=success"))) == [pr, ok]
    assert list(rows(await lab.page("/runs?state=running"))) == [running]
    assert list(rows(await lab.page("/runs?pr=7"))) == [pr]
    assert list(rows(await lab.page("/runs?branch=tune-lr"))) == [pr]
    assert list(rows(await lab.page("/runs?workflow=eval&state=success"))) == [pr]
    empty = await lab.page("/runs?pr=8")
    assert rows(empty) == {}
    assert "No runs match these filters." in empty.get_text()
    form = await lab.page("/runs?workflow=eval")
    assert form.select_one('select[name="workflow"] option[selected]').get_text() == "eval"
    assert [o.get_text() for o in form.select('select[name="branch"] option')] == [
        "all",
        "main",
        "tune-lr",
    ]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (
            "state=exploded",
            "state must be one of pending, running, finished, success, failure, not 'exploded'",
        ),
        ("pr=seven", "pr must be a number, not 'seven'"),
        ("repository=-1", "repository must be a number, not '-1'"),
    ],
)
async def test_a_malformed_filter_is_a_400_that_names_it(lab: Lab, query: str, error: str):
    response = await lab.client.get(f"/runs?{query}", headers={"accept": "application/json"})
    assert (response.status_code, response.json()) == (400, {"error": error})


async def test_pages_of_fifty_newest_first(lab: Lab):
    ids = [await lab.run() for _ in range(53)]
    first = await lab.page("/runs")
    assert list(rows(first)) == ids[::-1][:50]
    older = first.select_one('a[rel="next"]')
    assert older is not None
    assert first.select_one('a[rel="prev"]') is None
    second = await lab.page("/runs" + older["href"])
    assert list(rows(second)) == ids[::-1][50:]
    assert second.select_one('a[rel="next"]') is None
    assert second.select_one('a[rel="prev"]') is not None


async def test_htmx_gets_the_table_alone_and_asks_again_with_the_same_filters(lab: Lab):
    run = await lab.run(state="running", conclusion=None)
    whole = await lab.page("/runs?state=running")
    refresh = whole.select_one("#runs")
    assert refresh["hx-get"] == "/runs?state=running"
    assert refresh["hx-trigger"].startswith("every ")
    part = await lab.page("/runs?state=running", **{"HX-Request": "true"})
    assert part.find("html") is None
    assert part.find("nav") is None
    assert list(rows(part)) == [run]
