"""A metric's history chart in a real browser (issue 13, item 4): uPlot draws the runs,
the legend names the commit and run under the cursor, a click opens that run, and the
browser reports no console error and no Content-Security-Policy violation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from helpers.browsing import Person
from helpers.history import add_measured_run
from helpers.stack import Stack
from labci_server.db.engine import make_engine, make_sessionmaker
from labci_server.db.migrate import upgrade
from labci_server.db.models import Repository

pytestmark = pytest.mark.e2e

VALUES = [(0.90, 0.91), (0.905,), (0.93, 0.94), (0.935,)]


@pytest.fixture
def measured(stack: Stack, database_url: str) -> list[int]:
    """Four runs of `acc` on main of the public octo/exp and two of its pull request #7, then
    `labci serve`; their ids.
    Seeded before the browser starts (its event loop and asyncio.run do not mix)."""

    async def seed() -> list[int]:
        await upgrade(database_url)
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        try:
            async with sessions() as session, session.begin():
                repo = Repository(provider="github", full_name="octo/exp", clone_url="x",
                                  private=False)  # fmt: skip
                session.add(repo)
                await session.flush()
                repo_id = repo.id or 0
            ids = [
                await add_measured_run(sessions, repo_id, serial=i + 1, values=values)
                for i, values in enumerate(VALUES)
            ]
            # Pull request #7's two pushes, newer than main's runs.
            for serial, values in ((5, (0.95,)), (6, (0.97, 0.96))):
                ids.append(await add_measured_run(sessions, repo_id, serial=serial,
                                                  values=values, branch="tune", pr=7))  # fmt: skip
            return ids
        finally:
            await engine.dispose()

    ids = asyncio.run(seed())
    stack.start_server()
    return ids


def test_the_chart_shows_each_runs_commit_and_opens_it(
    stack: Stack, measured: list[int], open_tab: Callable[[], Person]
):
    person = open_tab()
    page = person.page
    page.goto("/repos/octo/exp/metrics/history?workflow=train&job=fit&metric=acc")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-ready", "4")
    expect(chart.locator("canvas")).to_have_count(1)
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    # The newest run is at the right edge: the legend names its commit and run.
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    legend = chart.locator(".u-legend .u-series").nth(1)
    expect(legend).to_contain_text(f"{4:040x}"[:7])
    expect(legend).to_contain_text(f"run #{measured[3]}")
    expect(legend).to_contain_text("0.935")
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(f"{stack.url}/runs/{measured[3]}")
    assert person.page_errors() == []
    assert person.violations() == []


def test_a_pull_requests_runs_are_drawn_over_the_branch(
    stack: Stack, measured: list[int], open_tab: Callable[[], Person]
):
    person = open_tab()
    page = person.page
    page.goto("/repos/octo/exp/metrics/history?workflow=train&job=fit&metric=acc&pr=7")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-overlay", "2")
    expect(chart).to_have_attribute("data-ready", "4")
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    # The pull request's newest run is the newest point: the overlay's legend names it.
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    legend = chart.locator(".u-legend .u-series").nth(4)
    expect(legend).to_contain_text("pull request #7")
    expect(legend).to_contain_text(f"run #{measured[-1]}")
    expect(legend).to_contain_text("0.965")
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(f"{stack.url}/runs/{measured[-1]}")
    assert person.page_errors() == []
    assert person.violations() == []
