"""Change points in the metric history API and the trend chart, on a real database: found on
the repository's default branch only, listed with the two commits around each, drawn as a
marked line with a tooltip, and available to a bisection."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import httpx
import pytest

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import Event, Job, Metric, Repository, Run
from labci_server.results.branch_history import SeriesKey, branch_change_points

SVG = "{http://www.w3.org/2000/svg}"
SERIAL = itertools.count(1)
PARAMS = {"workflow": "train", "job": "mnist", "metric": "acc"}
# A fixed wobble of ±0.002 around each level, the same on both sides of a step.
WOBBLE = (0.0, 0.002, -0.001, 0.001, -0.002)


@pytest.fixture
async def client(database_url, redis_url):
    settings = test_settings(database_url, redis_url)
    await upgrade(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def sessions(client):
    return client.app.state.context.sessions


async def add_repo(client, default_branch: str | None = None) -> Repository:
    async with sessions(client)() as session, session.begin():
        repo = Repository(
            provider="github",
            full_name="org/exp",
            clone_url="https://example.invalid/org/exp.git",
            default_branch=default_branch,
        )
        session.add(repo)
    return repo


async def add_runs(
    client, repo: Repository, levels: list[float], *, branch: str = "main", trigger="push"
) -> list[Run]:
    """A finished run per level, oldest first, each with two seeds 0.002 apart around the
    level plus the wobble."""
    runs = []
    async with sessions(client)() as session, session.begin():
        for i, level in enumerate(levels):
            serial = next(SERIAL)
            sha = f"{serial:040x}"
            event = Event(
                delivery_id=f"delivery-{serial}",
                provider="github",
                kind="push",
                repository_id=repo.id,
                commit_sha=sha,
                branch=branch,
            )
            session.add(event)
            await session.flush()
            run = Run(
                event_id=event.id,
                repository_id=repo.id,
                workflow_path=".labci/train.yml",
                workflow_name="train",
                commit_sha=sha,
                trigger=trigger,
                branch=branch,
                pr_number=7 if trigger == "pull_request" else None,
                state="finished",
                conclusion="success",
                created_at=1_800_000_000.0 + serial,
                finished_at=1_800_000_000.0 + 60 * serial,
            )
            session.add(run)
            await session.flush()
            value = level + WOBBLE[i % len(WOBBLE)]
            for seed, offset in enumerate((-0.001, 0.001)):
                job = Job(
                    run_id=run.id,
                    job_key=f"mnist #{seed}",
                    workflow_job="mnist",
                    context="labci/train/mnist",
                    spec={},
                    runs_on=["cpu"],
                    timeout_s=60,
                    state="success",
                )
                session.add(job)
                await session.flush()
                session.add(Metric(job_id=job.id, attempt=1, name="acc", value=value + offset))
            runs.append(run)
    return runs


async def history(client, **params) -> dict:
    response = await client.get("/api/v1/repos/org/exp/metrics", params={**PARAMS, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_history_lists_a_step_with_the_commits_around_it(client):
    repo = await add_repo(client)
    runs = await add_runs(client, repo, [0.90] * 20 + [0.95] * 20)

    body = await history(client)

    assert len(body["points"]) == 40
    assert body["points"][0]["commit"] == runs[-1].commit_sha
    assert body["default_branch"] == "main"
    (change,) = body["change_points"]
    assert {k: change[k] for k in ("commit", "run_id", "before_commit", "before_run_id")} == {
        "commit": runs[20].commit_sha,
        "run_id": runs[20].id,
        "before_commit": runs[19].commit_sha,
        "before_run_id": runs[19].id,
    }
    assert change["time"] == runs[20].finished_at
    assert change["mean_before"] == pytest.approx(0.90, abs=1e-9)
    assert change["mean_after"] == pytest.approx(0.95, abs=1e-9)
    assert change["change"] == pytest.approx(0.05 / 0.90)
    assert change["p_value"] < 1e-4
    assert (change["runs_before"], change["runs_after"]) == (20, 20)


async def test_a_flat_history_has_no_change_points(client):
    repo = await add_repo(client)
    await add_runs(client, repo, [0.90] * 40)

    assert (await history(client))["change_points"] == []


async def test_change_points_are_only_looked_for_on_the_default_branch(client):
    repo = await add_repo(client, default_branch="trunk")
    await add_runs(client, repo, [0.90] * 20 + [0.95] * 20, branch="main")
    trunk = await add_runs(client, repo, [0.95] * 20 + [0.90] * 20, branch="trunk")

    on_main = await history(client, branch="main")
    on_trunk = await history(client)  # without ?branch=, the repository's default branch

    assert (on_main["default_branch"], on_main["change_points"]) == ("trunk", None)
    assert len(on_main["points"]) == 40
    assert on_trunk["branch"] == "trunk"
    assert [c["commit"] for c in on_trunk["change_points"]] == [trunk[20].commit_sha]
    assert on_trunk["change_points"][0]["change"] == pytest.approx(-0.05 / 0.95)


async def test_a_shorter_view_lists_the_change_points_between_its_runs(client):
    repo = await add_repo(client)
    runs = await add_runs(client, repo, [0.90] * 20 + [0.95] * 20 + [0.92] * 20)

    full = await history(client, limit=100)
    newest_30 = await history(client, limit=30)
    newest_20 = await history(client, limit=20)

    # Newest first, like the points; the same steps whatever the view.
    assert [c["commit"] for c in full["change_points"]] == [
        runs[40].commit_sha,
        runs[20].commit_sha,
    ]
    assert newest_30["change_points"] == full["change_points"][:1]
    assert newest_30["change_points"][0]["mean_before"] == pytest.approx(0.95, abs=1e-9)
    assert newest_20["change_points"] == []  # its oldest run is the step's first


async def test_pull_request_runs_are_not_part_of_the_level(client):
    repo = await add_repo(client)
    await add_runs(client, repo, [0.90] * 20)
    await add_runs(client, repo, [0.99] * 10, trigger="pull_request")
    await add_runs(client, repo, [0.90] * 20)

    assert (await history(client))["change_points"] == []


async def test_the_openapi_document_describes_the_change_points(client):
    document = (await client.get("/openapi.json")).json()

    route = document["paths"]["/api/v1/repos/{owner}/{repo}/metrics"]["get"]
    schema = route["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/MetricHistory"}
    fields = document["components"]["schemas"]["MetricChangePoint"]["properties"]
    assert {"commit", "before_commit", "mean_before", "mean_after", "change", "p_value"} <= set(
        fields
    )


# --- trend chart --------------------------------------------------------------------------


def polyline_xs(root: ET.Element) -> list[float]:
    line = root.find(f".//{SVG}polyline")
    assert line is not None
    return [float(pair.split(",")[0]) for pair in (line.get("points") or "").split()]


async def test_the_trend_marks_the_step_between_its_two_runs(client):
    repo = await add_repo(client)
    runs = await add_runs(client, repo, [0.90] * 20 + [0.95] * 10)

    response = await client.get("/badges/org/exp/train/mnist/acc/trend.svg")

    root = ET.fromstring(response.text)
    (mark,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "change"]
    tooltip = mark.find(f"{SVG}title").text
    before, after = runs[19].commit_sha[:7], runs[20].commit_sha[:7]
    expected = rf"acc 0\.9 → 0\.95 \(\+5\.6%\) between {before} and {after}, p = \de-\d\d"
    assert re.fullmatch(expected, tooltip), tooltip
    line = mark.find(f"{SVG}line")
    xs = polyline_xs(root)
    assert float(line.get("x1")) == float(line.get("x2"))
    assert xs[19] < float(line.get("x1")) < xs[20]


async def test_the_trend_of_a_flat_metric_or_another_branch_has_no_mark(client):
    repo = await add_repo(client, default_branch="trunk")
    await add_runs(client, repo, [0.90] * 20 + [0.95] * 10, branch="main")
    await add_runs(client, repo, [0.90] * 30, branch="trunk")

    for branch in ("main", "trunk"):
        response = await client.get(
            "/badges/org/exp/train/mnist/acc/trend.svg", params={"branch": branch}
        )
        root = ET.fromstring(response.text)
        assert len(polyline_xs(root)) == 30
        assert [g for g in root.iter(f"{SVG}g") if g.get("class") == "change"] == []


# --- for bisection ------------------------------------------------------------------------


async def test_bisection_gets_the_latest_change_points_of_the_default_branch(client):
    repo = await add_repo(client, default_branch="trunk")
    await add_runs(client, repo, [0.5] * 30, branch="main")
    runs = await add_runs(client, repo, [0.90] * 15 + [0.80] * 15 + [0.85] * 15, branch="trunk")
    key = SeriesKey(workflow_name="train", context="labci/train/mnist", metric="acc")

    async with sessions(client)() as session:
        found = await branch_change_points(session, repository=repo, series=key)
        recent = await branch_change_points(session, repository=repo, series=key, runs=20)

    assert [(c.before_commit_sha, c.commit_sha) for c in found] == [
        (runs[14].commit_sha, runs[15].commit_sha),
        (runs[29].commit_sha, runs[30].commit_sha),
    ]
    assert [(c.mean_before, c.mean_after) for c in found] == [
        pytest.approx((0.90, 0.80)),
        pytest.approx((0.80, 0.85)),
    ]
    assert [c.commit_sha for c in recent] == [runs[30].commit_sha]
