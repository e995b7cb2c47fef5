"""A local pull request's labci comment, rendered as GitHub would render it (issue 13,
item 5): its table, its collapsed sections, and nothing a pull request could smuggle in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup

from labci_server.db.models import Event, Repository, Run
from labci_server.db.queries.outbox import save_pull_request_comment

BROWSER = {"accept": "text/html"}
COMMENT = """\
## labci · train

| metric | base | head | Δ |
|---|--:|--:|--:|
| accuracy | 0.9512 | 0.9561 | +0.49 % |
| `<img src=x onerror=alert(1)>` | 1 | 2 | +1 |

<details><summary>Reproducibility record</summary>

| | head |
|---|---|
| image | sha256:abc |

</details>

<script>alert("not here")</script>
[a link](javascript:alert(1)) and [a real one](https://example.org/x)
<!-- labci:comment -->
"""


@dataclass
class Lab:
    client: httpx.AsyncClient
    sessions: Any

    async def run(self, provider: str, name: str, pr: int | None) -> tuple[int, int]:
        async with self.sessions() as session, session.begin():
            repo = Repository(provider=provider, full_name=name, clone_url=name, private=False)
            session.add(repo)
            await session.flush()
            event = Event(
                delivery_id=f"d-{name}",
                provider=provider,
                kind="pull_request" if pr else "push",
                repository_id=repo.id or 0,
                commit_sha="a" * 40,
                branch="tune",
                pr_number=pr,
                state="planned",
            )
            session.add(event)
            await session.flush()
            run = Run(
                event_id=event.id or 0,
                repository_id=repo.id or 0,
                workflow_path=".labci/train.yml",
                workflow_name="train",
                commit_sha="a" * 40,
                trigger="pull_request" if pr else "push",
                branch="tune",
                pr_number=pr,
            )
            session.add(run)
            await session.flush()
            return run.id or 0, repo.id or 0


@pytest.fixture
def lab(site) -> Lab:
    return Lab(site.client, site.sessions)


async def test_the_comment_is_rendered_as_github_would_and_nothing_more(lab: Lab):
    run_id, repo_id = await lab.run("git", "/srv/git/exp.git", pr=3)
    async with lab.sessions() as session, session.begin():
        await save_pull_request_comment(session, repository_id=repo_id, pr_number=3, body=COMMENT)
    response = await lab.client.get(f"/runs/{run_id}/pull-request", headers=BROWSER)
    assert response.status_code == 200
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.h1.get_text() == "Pull request #3"
    comment = soup.select_one("article.comment")
    assert comment.h2.get_text() == "labci · train"
    first = comment.find("table")
    cells = [[c.get_text() for c in tr.find_all(["th", "td"])] for tr in first.find_all("tr")]
    assert cells[:2] == [
        ["metric", "base", "head", "Δ"],
        ["accuracy", "0.9512", "0.9561", "+0.49 %"],
    ]
    assert first.find_all("td")[1]["style"] == "text-align:right"
    # What a pull request controls is text: the metric name shows, it is not an element.
    assert cells[2][0] == "<img src=x onerror=alert(1)>"
    assert comment.find("img") is None
    details = comment.find("details")
    assert details.summary.get_text() == "Reproducibility record"
    assert "sha256:abc" in details.get_text()
    assert soup.find("script", string=lambda s: s and "not here" in s) is None
    assert "alert" not in str(comment.find_all("a"))
    (real,) = comment.find_all("a")
    assert real["href"] == "https://example.org/x"
    assert "noopener" in real["rel"]
    assert soup.select_one(f'a[href="/runs/{run_id}"]') is not None


async def test_before_labci_commented_the_page_says_so(lab: Lab):
    run_id, _ = await lab.run("git", "/srv/git/quiet.git", pr=4)
    page = await lab.client.get(f"/runs/{run_id}/pull-request", headers=BROWSER)
    assert page.status_code == 200
    assert "labci has not commented on this pull request yet" in page.text


async def test_a_github_pull_request_is_on_github(lab: Lab):
    run_id, _ = await lab.run("github", "octo/exp", pr=7)
    page = await lab.client.get(f"/runs/{run_id}/pull-request", headers=BROWSER)
    assert (page.status_code, page.headers["location"]) == (
        303,
        "https://github.com/octo/exp/pull/7",
    )


async def test_a_push_has_no_pull_request(lab: Lab):
    run_id, _ = await lab.run("git", "/srv/git/pushed.git", pr=None)
    page = await lab.client.get(f"/runs/{run_id}/pull-request")
    assert (page.status_code, page.json()) == (
        404,
        {"error": f"run {run_id} is not of a pull request"},
    )
