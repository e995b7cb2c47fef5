"""The run page as a browser gets it: one commit status per context (the newest, as the
forge shows it, not the stale "queued" beside it), each step's duration, and the raw log."""

from __future__ import annotations

import time

import httpx
from bs4 import BeautifulSoup

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import Event, Job, OutboxMessage, Repository, Run, Step
from labci_server.db.queries import jobs as job_queries

SHA = "b" * 40


async def test_statuses_are_the_newest_per_context_and_steps_say_how_long(database_url, redis_url):
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        async with app.state.context.sessions() as session, session.begin():
            repo = Repository(provider="github", full_name="octo/exp", clone_url="x", private=False)
            session.add(repo)
            await session.flush()
            event = Event(
                delivery_id="d",
                provider="github",
                kind="push",
                repository_id=repo.id or 0,
                commit_sha=SHA,
                branch="main",
            )
            session.add(event)
            await session.flush()
            run = Run(
                event_id=event.id or 0,
                repository_id=repo.id or 0,
                workflow_path=".labci/t.yml",
                workflow_name="t",
                commit_sha=SHA,
                trigger="push",
                branch="main",
                state="running",
            )
            session.add(run)
            await session.flush()
            job = Job(
                run_id=run.id or 0,
                job_key="fit",
                context="labci/t/fit",
                spec={},
                runs_on=["cpu"],
                timeout_s=60,
                state="running",
            )
            session.add(job)
            await session.flush()
            now = time.time()
            session.add(Step(job_id=job.id or 0, attempt=1, index=0, name="prepare",
                             status="success", exit_code=0, started_at=now - 100,
                             finished_at=now - 35))  # fmt: skip
            session.add(Step(job_id=job.id or 0, attempt=1, index=1, name="train",
                             status="running", started_at=now - 30))  # fmt: skip
            for state, description in (("pending", "queued"), ("success", "accuracy 0.93")):
                session.add(
                    OutboxMessage(
                        repository_id=repo.id or 0,
                        commit_sha=SHA,
                        context="labci/t/fit",
                        state=state,
                        description=description,
                        status="sent",
                    )
                )
            run_id, job_id = run.id, job.id
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            page = await c.get(f"/runs/{run_id}", headers={"accept": "text/html"})
    soup = BeautifulSoup(page.text, "html.parser")
    tables = {t.find_previous(["h2", "h3"]).get_text(): t for t in soup.find_all("table")}
    statuses = [
        [td.get_text() for td in tr.find_all("td")]
        for tr in tables["Commit statuses"].find_all("tr")[1:]
    ]
    assert statuses == [["labci/t/fit", "success", "accuracy 0.93", "sent"]]
    steps = [
        [td.get_text() for td in tr.find_all("td")] for tr in tables["Steps"].find_all("tr")[1:]
    ]
    assert steps[0] == ["0", "prepare", "success", "0", "1 min 05 s"]
    assert steps[1][:4] == ["1", "train", "running", ""]
    assert steps[1][4].endswith(" s so far")
    assert soup.select_one(f'a[href="/jobs/{job_id}/log.txt"]') is not None


async def test_a_long_log_shows_its_tail_and_earlier_stretches_on_demand(database_url, redis_url):
    """Where a failure prints is the end: the page opens on the last 5,000 lines, and each
    "show earlier" brings the 5,000 before (htmx swaps them in; the link works alone)."""
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        async with app.state.context.sessions() as session, session.begin():
            repo = Repository(
                provider="github", full_name="octo/long", clone_url="x", private=False
            )
            session.add(repo)
            await session.flush()
            event = Event(delivery_id="d", provider="github", kind="push",
                          repository_id=repo.id or 0, commit_sha=SHA, branch="main")  # fmt: skip
            session.add(event)
            await session.flush()
            run = Run(event_id=event.id or 0, repository_id=repo.id or 0, workflow_path="w",
                      workflow_name="w", commit_sha=SHA, trigger="push", branch="main",
                      state="finished")  # fmt: skip
            session.add(run)
            await session.flush()
            job = Job(run_id=run.id or 0, job_key="fit", context="labci/w/fit", spec={},
                      runs_on=["cpu"], timeout_s=60, state="failure")  # fmt: skip
            session.add(job)
            await session.flush()
            lines = [{"seq": n, "step": 0, "stream": "stdout", "text": f"n{n}", "ts": 0.0}
                     for n in range(12_000)]  # fmt: skip
            await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1, lines=lines)
            run_id, job_id = run.id, job.id
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            page = BeautifulSoup((await c.get(f"/runs/{run_id}")).text, "html.parser")
            shown = [span.contents[-1] for span in page.select("pre.log .line")]
            assert shown == [f"n{n}" for n in range(7_000, 12_000)]
            earlier = page.select_one("pre.log a.earlier")
            assert earlier["hx-get"] == f"/jobs/{job_id}/log?before=7000"
            stretches = []
            while earlier is not None:
                part = BeautifulSoup((await c.get(earlier["hx-get"])).text, "html.parser")
                stretches.append([span.contents[-1] for span in part.select(".line")])
                earlier = part.select_one("a.earlier")
    assert stretches == [[f"n{n}" for n in range(2_000, 7_000)], [f"n{n}" for n in range(2_000)]]
