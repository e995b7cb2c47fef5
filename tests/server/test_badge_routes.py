"""Badge, trend and metric-history routes on a real database: which run a badge reads, what it
shows, how it is cached, and who may see a private repository's badges."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jsonschema
import pytest

from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import ContextVerdict, Event, Job, Metric, Repository, Run
from labci_server.errors import BadRequest, NotFound
from labci_server.web.badge_tokens import ensure_badge_token
from labci_server.web.badges import etag

SVG = "{http://www.w3.org/2000/svg}"
SCHEMA_PATH = Path(__file__).parents[1] / "fixtures" / "shields" / "endpoint.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
# shields' fills (badge-maker lib/color.js), written out so a wrong colour name shows here.
FILLS = {"brightgreen": "#4c1", "red": "#e05d44", "yellow": "#dfb317", "lightgrey": "#9f9f9f"}
BLUE = "#007ec6"
SERIAL = itertools.count(1)


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


# --- rows -------------------------------------------------------------------------------


@dataclass
class JobRow:
    group: str = "mnist"
    state: str = "success"
    metrics: dict[str, float] = field(default_factory=dict)
    attempt: int = 1
    metrics_attempt: int | None = None  # the attempt that reported them (default: current)


def sessions(client):
    return client.app.state.context.sessions


async def add_repo(client, full_name: str = "org/exp", **values) -> int:
    async with sessions(client)() as session, session.begin():
        repo = Repository(
            provider=values.pop("provider", "github"),
            full_name=full_name,
            clone_url=f"https://example.invalid/{full_name}.git",
            **values,
        )
        session.add(repo)
        await session.flush()
    return repo.id


async def add_run(
    client,
    repo_id: int,
    *,
    workflow: str = "train",
    branch: str = "main",
    trigger: str = "push",
    state: str = "finished",
    conclusion: str | None = "success",
    jobs: list[JobRow] | tuple[JobRow, ...] = (),
    verdicts: dict[str, str] | None = None,
    finished_at: float | None = None,
) -> Run:
    """A run with its event, jobs, metrics and verdicts ({group: state})."""
    serial = next(SERIAL)
    sha = f"{serial:040x}"
    async with sessions(client)() as session, session.begin():
        event = Event(
            delivery_id=f"delivery-{serial}",
            provider="github",
            kind="pull_request" if trigger == "pull_request" else "push",
            repository_id=repo_id,
            commit_sha=sha,
            branch=branch,
        )
        session.add(event)
        await session.flush()
        run = Run(
            event_id=event.id,
            repository_id=repo_id,
            workflow_path=f".labci/{workflow}.yml",
            workflow_name=workflow,
            commit_sha=sha,
            trigger=trigger,
            branch=branch,
            pr_number=7 if trigger == "pull_request" else None,
            state=state,
            conclusion=conclusion,
            created_at=1_700_000_000.0 + serial,
            finished_at=finished_at,
        )
        session.add(run)
        await session.flush()
        for index, row in enumerate(jobs):
            job = Job(
                run_id=run.id,
                job_key=f"{row.group} #{index}",
                workflow_job=row.group.split(" ")[0],
                context=f"labci/{workflow}/{row.group}",
                spec={},
                runs_on=["cpu"],
                timeout_s=60,
                state=row.state,
                attempt=row.attempt,
            )
            session.add(job)
            await session.flush()
            for name, value in row.metrics.items():
                attempt = row.metrics_attempt or row.attempt
                session.add(Metric(job_id=job.id, attempt=attempt, name=name, value=value))
        for group, verdict in (verdicts or {}).items():
            session.add(
                ContextVerdict(
                    run_id=run.id,
                    repository_id=repo_id,
                    commit_sha=sha,
                    context=f"labci/{workflow}/{group}",
                    state=verdict,
                    description=f"{group}: {verdict}",
                )
            )
    return run


def seeds(*values: float, group: str = "mnist", metric: str = "acc") -> list[JobRow]:
    return [JobRow(group=group, metrics={metric: v}) for v in values]


# --- reading badges -----------------------------------------------------------------------


def parse_badge(svg: str) -> tuple[list[str], str]:
    """The visible texts (not the shadows) and the message box's fill."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    texts = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("aria-hidden") != "true"]
    group = next(g for g in root.iter(f"{SVG}g") if g.get("clip-path"))
    _label, message, _gradient = group.findall(f"{SVG}rect")
    return texts, message.get("fill") or ""


async def badge(client, path: str, **params) -> tuple[list[str], str]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    return parse_badge(response.text)


async def badge_data(client, path: str, **params) -> dict:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    VALIDATOR.validate(body)
    return body


# --- workflow status ----------------------------------------------------------------------

STATUS_CASES = [
    ({"conclusion": "success"}, "passing", "brightgreen"),
    ({"conclusion": "success", "verdicts": {"mnist": "success"}}, "passing", "brightgreen"),
    ({"conclusion": "failure"}, "failing", "red"),
    ({"conclusion": "success", "verdicts": {"mnist": "failure"}}, "failing", "red"),
    (
        {"conclusion": "success", "verdicts": {"mnist": "success", "cifar": "error"}},
        "failing",
        "red",
    ),
    ({"state": "running", "conclusion": None}, "running", "yellow"),
    ({"state": "pending", "conclusion": None}, "running", "yellow"),
]


@pytest.mark.parametrize(
    ("run", "status", "color"),
    STATUS_CASES,
    ids=[
        "success",
        "success-verdict-passes",
        "job-failed",
        "gated-regression",
        "verdict-error",
        "running",
        "pending",
    ],
)
async def test_status_badge_shows_the_newest_branch_run(client, run, status, color):
    repo = await add_repo(client)
    await add_run(client, repo, conclusion="failure")  # older: must not count
    await add_run(client, repo, **run)

    texts, fill = await badge(client, "/badges/org/exp/train.svg")
    data = await badge_data(client, "/badges/org/exp/train.json")

    assert texts == ["train", status]
    assert fill == FILLS[color]
    assert data == {
        "schemaVersion": 1,
        "label": "train",
        "message": status,
        "color": color,
        "isError": False,
    }


async def test_status_is_unknown_without_a_run(client):
    repo = await add_repo(client)
    await add_run(client, repo, workflow="eval")

    texts, fill = await badge(client, "/badges/org/exp/train.svg")
    data = await badge_data(client, "/badges/org/exp/train.json")

    assert (texts, fill) == (["train", "unknown"], FILLS["lightgrey"])
    assert (data["message"], data["color"]) == ("unknown", "lightgrey")


async def test_pull_requests_and_other_branches_do_not_change_the_badge(client):
    repo = await add_repo(client)
    await add_run(client, repo, conclusion="success")
    await add_run(client, repo, trigger="pull_request", branch="main", conclusion="failure")
    await add_run(client, repo, trigger="pull_request", branch="feature", conclusion="failure")
    await add_run(client, repo, branch="dev", conclusion="failure")
    await add_run(client, repo, workflow="eval", conclusion="failure")

    assert (await badge(client, "/badges/org/exp/train.svg"))[0] == ["train", "passing"]
    dev = await badge(client, "/badges/org/exp/train.svg", branch="dev")
    assert dev[0] == ["train", "failing"]
    feature = await badge(client, "/badges/org/exp/train.svg", branch="feature")
    assert feature[0] == ["train", "unknown"]


async def test_without_a_branch_badges_read_the_repositorys_default_branch(client):
    repo = await add_repo(client, default_branch="master")
    await add_run(client, repo, branch="main", conclusion="failure")
    await add_run(
        client, repo, branch="master", jobs=[JobRow(metrics={"acc": 0.9})], conclusion="success"
    )

    assert (await badge(client, "/badges/org/exp/train.svg"))[0] == ["train", "passing"]
    assert (await badge_data(client, "/badges/org/exp/train/mnist/acc.json"))["message"] == "0.9"
    main = await badge(client, "/badges/org/exp/train.svg", branch="main")
    assert main[0] == ["train", "failing"]
    history = await client.get(
        "/api/v1/repos/org/exp/metrics",
        params={"workflow": "train", "job": "mnist", "metric": "acc"},
    )
    assert (history.json()["branch"], len(history.json()["points"])) == ("master", 1)


async def test_a_baseline_or_manual_run_measures_the_branch(client):
    repo = await add_repo(client)
    await add_run(client, repo, conclusion="success")
    await add_run(client, repo, trigger="workflow_dispatch", conclusion="failure")

    assert (await badge(client, "/badges/org/exp/train.svg"))[0] == ["train", "failing"]


async def test_names_from_the_url_are_escaped(client):
    repo = await add_repo(client)
    await add_run(client, repo, workflow="a<b>&'c\"")

    response = await client.get("/badges/org/exp/a<b>&'c\".svg")

    assert response.status_code == 200
    assert parse_badge(response.text)[0] == ["a<b>&'c\"", "passing"]
    assert "<b>" not in response.text


# --- caching ------------------------------------------------------------------------------


async def test_badges_are_revalidated_and_answer_304(client):
    repo = await add_repo(client)
    await add_run(client, repo, conclusion="success")

    first = await client.get("/badges/org/exp/train.svg")
    tag = first.headers["etag"]
    again = await client.get("/badges/org/exp/train.svg", headers={"If-None-Match": tag})
    listed = await client.get(
        "/badges/org/exp/train.svg", headers={"If-None-Match": f'"other", W/{tag}'}
    )
    stale = await client.get("/badges/org/exp/train.svg", headers={"If-None-Match": '"other"'})

    assert first.headers["cache-control"] == "no-cache, max-age=0"
    assert tag == etag(first.content)  # strong: no W/ prefix
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == tag
    assert again.headers["cache-control"] == "no-cache, max-age=0"
    assert listed.status_code == 304
    assert (stale.status_code, stale.text) == (200, first.text)

    await add_run(client, repo, conclusion="failure")
    changed = await client.get("/badges/org/exp/train.svg", headers={"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != tag
    assert parse_badge(changed.text)[0] == ["train", "failing"]


@pytest.mark.parametrize(
    "path",
    [
        "/badges/org/exp/train.json",
        "/badges/org/exp/train/mnist/acc.svg",
        "/badges/org/exp/train/mnist/acc.json",
        "/badges/org/exp/train/mnist/acc/trend.svg",
    ],
    ids=["status-json", "metric-svg", "metric-json", "trend"],
)
async def test_every_badge_has_validators(client, path):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.5))

    first = await client.get(path)
    again = await client.get(path, headers={"If-None-Match": first.headers["etag"]})

    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache, max-age=0"
    assert first.headers["etag"] == again.headers["etag"]
    assert (again.status_code, again.content) == (304, b"")


# --- metric badges ------------------------------------------------------------------------


async def test_metric_badge_shows_mean_and_spread_of_the_repeats(client):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.5, 0.6, 0.7))
    await add_run(client, repo, jobs=seeds(0.90, 0.92, 0.94))

    texts, fill = await badge(client, "/badges/org/exp/train/mnist/acc.svg")
    data = await badge_data(client, "/badges/org/exp/train/mnist/acc.json")

    assert (texts, fill) == (["acc", "0.92 ± 0.02 (n=3)"], BLUE)
    assert (data["label"], data["message"], data["color"]) == ("acc", "0.92 ± 0.02 (n=3)", "blue")


async def test_metric_badge_of_a_single_value(client):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.8123))

    texts, fill = await badge(client, "/badges/org/exp/train/mnist/acc.svg")

    assert (texts, fill) == (["acc", "0.8123"], BLUE)


async def test_metric_badge_counts_only_finished_successful_branch_runs(client):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.7, 0.9))
    # Newer, but a seed still runs: the context is not done.
    await add_run(
        client,
        repo,
        state="running",
        conclusion=None,
        jobs=[JobRow(metrics={"acc": 0.1}), JobRow(state="running")],
    )
    # Newer, from a pull request.
    await add_run(client, repo, trigger="pull_request", jobs=seeds(0.2, 0.2))
    # Newer, every job failed although one reported a number.
    await add_run(
        client, repo, conclusion="failure", jobs=[JobRow(state="failure", metrics={"acc": 0.3})]
    )

    texts, _ = await badge(client, "/badges/org/exp/train/mnist/acc.svg")

    assert texts == ["acc", "0.8 ± 0.14 (n=2)"]


async def test_a_failed_seed_is_left_out_of_the_mean(client):
    repo = await add_repo(client)
    await add_run(
        client,
        repo,
        conclusion="failure",
        jobs=[
            JobRow(metrics={"acc": 0.9}),
            JobRow(state="failure", metrics={"acc": 0.1}),
            JobRow(metrics={"acc": 0.7}),
            # Succeeded on a retry that did not report it: attempt 1's number is stale.
            JobRow(attempt=2, metrics_attempt=1, metrics={"acc": 0.0}),
        ],
    )

    texts, _ = await badge(client, "/badges/org/exp/train/mnist/acc.svg")

    assert texts == ["acc", "0.8 ± 0.14 (n=2)"]


async def test_matrix_group_is_addressed_url_encoded(client):
    repo = await add_repo(client)
    await add_run(
        client,
        repo,
        jobs=seeds(0.25, group="sweep (0.1)") + seeds(0.75, group="sweep (0.2)"),
    )

    texts, _ = await badge(client, "/badges/org/exp/train/sweep%20(0.1)/acc.svg")
    other, _ = await badge(client, "/badges/org/exp/train/sweep%20%280.2%29/acc.svg")

    assert texts == ["acc", "0.25"]
    assert other == ["acc", "0.75"]


@pytest.mark.parametrize(
    "path",
    [
        "/badges/org/exp/train/mnist/loss",
        "/badges/org/exp/train/cifar/acc",
        "/badges/org/exp/eval/mnist/acc",
    ],
    ids=["metric", "job", "workflow"],
)
async def test_unknown_series_shows_no_data(client, path):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.5))

    texts, fill = await badge(client, f"{path}.svg")
    data = await badge_data(client, f"{path}.json")

    assert texts[1:] == ["no data"]
    assert fill == FILLS["lightgrey"]
    assert (data["message"], data["color"]) == ("no data", "lightgrey")


# --- repositories -------------------------------------------------------------------------


async def test_unknown_repository_is_404(client):
    repo = await add_repo(client)
    await add_run(client, repo)

    for path in (
        "/badges/org/nothere/train.svg",
        "/badges/org/nothere/train.json",
        "/badges/other/exp/train/mnist/acc.svg",
        "/badges/org/nothere/train/mnist/acc/trend.svg",
        "/api/v1/repos/org/nothere/metrics?workflow=train&job=mnist&metric=acc",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "no such repository" in response.json()["error"]


async def test_private_repository_needs_its_token(client):
    repo = await add_repo(client, "org/secret", private=True, badge_token="s3cret-token")
    await add_run(client, repo, jobs=seeds(0.5))
    unknown = await client.get("/badges/org/nothere/train.svg")

    for path in ("/badges/org/secret/train.svg", "/badges/org/secret/train/mnist/acc.json"):
        for params in (
            {},
            {"token": ""},
            {"token": "wrong"},
            {"token": "s3cret-tokeN"},
            {"token": "ß"},
        ):
            response = await client.get(path, params=params)
            assert response.status_code == 404, (path, params)
            assert response.content == unknown.content

    texts, _ = await badge(client, "/badges/org/secret/train.svg", token="s3cret-token")
    data = await badge_data(client, "/badges/org/secret/train/mnist/acc.json", token="s3cret-token")
    history = await client.get(
        "/api/v1/repos/org/secret/metrics",
        params={"workflow": "train", "job": "mnist", "metric": "acc", "token": "s3cret-token"},
    )
    assert texts == ["train", "passing"]
    assert data["message"] == "0.5"
    assert [p["value"] for p in history.json()["points"]] == [0.5]


async def test_private_repository_without_a_token_set_stays_hidden(client):
    repo = await add_repo(client, "org/secret", private=True)
    await add_run(client, repo)

    response = await client.get("/badges/org/secret/train.svg", params={"token": ""})

    assert response.status_code == 404


async def test_public_repository_ignores_a_token(client):
    repo = await add_repo(client, badge_token="unused")
    await add_run(client, repo)

    texts, _ = await badge(client, "/badges/org/exp/train.svg", token="anything")

    assert texts == ["train", "passing"]


async def test_local_repository_is_found_by_its_last_two_path_components(client):
    repo = await add_repo(client, "/srv/git/team/model.git", provider="git")
    await add_repo(client, "/srv/git/other/model.git", provider="git")
    await add_repo(client, "/srv/git/team/model2.git", provider="git")
    await add_run(client, repo, conclusion="failure")

    for path in ("/badges/team/model/train.svg", "/badges/team/model.git/train.svg"):
        texts, _ = await badge(client, path)
        assert texts == ["train", "failing"], path
    assert (await client.get("/badges/git/model/train.svg")).status_code == 404
    assert (await client.get("/badges/srv/git/train.svg")).status_code == 404
    # LIKE wildcards in the name are plain characters.
    assert (await client.get("/badges/t%25m/model/train.svg")).status_code == 404
    assert (await client.get("/badges/t_am/model/train.svg")).status_code == 404


async def test_two_local_repositories_with_one_name_are_ambiguous(client):
    await add_repo(client, "/srv/a/team/model.git", provider="git")
    await add_repo(client, "/srv/b/team/model", provider="git")

    response = await client.get("/badges/team/model/train.svg")

    assert response.status_code == 404
    assert response.json()["error"] == (
        "the name team/model is ambiguous: 2 local repositories end in it; rename one of them"
    )


async def test_github_repository_wins_over_a_local_one_of_the_same_name(client):
    github = await add_repo(client, "team/model")
    local = await add_repo(client, "/srv/git/team/model.git", provider="git")
    await add_run(client, github, conclusion="success")
    await add_run(client, local, conclusion="failure")

    texts, _ = await badge(client, "/badges/team/model/train.svg")

    assert texts == ["train", "passing"]


# --- trend --------------------------------------------------------------------------------


def polyline_points(svg: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg)
    line = root.find(f".//{SVG}polyline")
    assert line is not None
    return [tuple(map(float, pair.split(","))) for pair in (line.get("points") or "").split()]


async def test_trend_has_a_point_per_run_oldest_first(client):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.5), finished_at=1_800_000_100.0)
    await add_run(client, repo, jobs=seeds(0.7, 0.9), finished_at=1_800_000_200.0)
    await add_run(client, repo, trigger="pull_request", jobs=seeds(0.1))
    await add_run(client, repo, jobs=seeds(0.6), finished_at=None)  # created_at is older

    response = await client.get("/badges/org/exp/train/mnist/acc/trend.svg")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    root = ET.fromstring(response.text)
    assert root.find(f"{SVG}title").text == "acc on main"
    points = polyline_points(response.text)
    assert len(points) == 3
    # By time: the run without a finish time (created 2023) first, then 0.5, then 0.8.
    ys = [y for _, y in points]
    assert ys[1] > ys[0] > ys[2]  # SVG y grows downwards: 0.5 lowest, 0.8 highest
    assert len([e for e in root.iter(f"{SVG}line") if e.get("class") == "error-bar"]) == 1
    last = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "last"]
    assert last == ["0.8"]


async def test_trend_limit_keeps_the_newest_runs(client):
    repo = await add_repo(client)
    for value in (0.1, 0.2, 0.3, 0.4):
        await add_run(client, repo, jobs=seeds(value))

    response = await client.get("/badges/org/exp/train/mnist/acc/trend.svg", params={"limit": 2})
    root = ET.fromstring(response.text)

    assert len(polyline_points(response.text)) == 2
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "first"] == ["0.3"]
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "last"] == ["0.4"]


async def test_trend_without_runs_says_so(client):
    await add_repo(client)

    response = await client.get(
        "/badges/org/exp/train/mnist/acc/trend.svg", params={"branch": "dev"}
    )
    root = ET.fromstring(response.text)

    assert response.status_code == 200
    assert root.find(f".//{SVG}polyline") is None
    assert [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "title"] == ["acc on dev"]


# --- history API --------------------------------------------------------------------------


async def test_history_lists_runs_newest_first(client):
    repo = await add_repo(client)
    first = await add_run(client, repo, jobs=seeds(0.5), finished_at=1_800_000_100.0)
    second = await add_run(client, repo, jobs=seeds(0.7, 0.9), finished_at=1_800_000_200.0)
    await add_run(client, repo, trigger="pull_request", jobs=seeds(0.1))
    third = await add_run(client, repo, jobs=seeds(1.0, 2.0, 3.0), finished_at=1_800_000_300.0)
    params = {"workflow": "train", "job": "mnist", "metric": "acc"}

    full = await client.get("/api/v1/repos/org/exp/metrics", params=params)
    limited = await client.get("/api/v1/repos/org/exp/metrics", params={**params, "limit": 2})

    assert full.status_code == 200
    body = full.json()
    assert {k: v for k, v in body.items() if k != "points"} == {
        "repository": "org/exp",
        "workflow": "train",
        "job": "mnist",
        "metric": "acc",
        "branch": "main",
        "default_branch": "main",
        "change_points": [],  # three runs are too few to show a change
        "bisections": [],
        "pull_request": None,  # ?pr= adds a pull request's runs
        "pull_request_points": None,
    }
    assert [p["run_id"] for p in body["points"]] == [third.id, second.id, first.id]
    assert body["points"][0] == {
        "run_id": third.id,
        "commit": third.commit_sha,
        "time": 1_800_000_300.0,
        "value": 2.0,
        "std": 1.0,
        "n": 3,
    }
    assert body["points"][1]["commit"] == second.commit_sha
    assert body["points"][1]["value"] == pytest.approx(0.8)
    assert body["points"][1]["std"] == pytest.approx(0.1414213562)
    assert body["points"][1]["n"] == 2
    assert body["points"][2] == {
        "run_id": first.id,
        "commit": first.commit_sha,
        "time": 1_800_000_100.0,
        "value": 0.5,
        "std": None,
        "n": 1,
    }
    assert [p["run_id"] for p in limited.json()["points"]] == [third.id, second.id]


async def test_history_of_an_unknown_metric_is_empty(client):
    repo = await add_repo(client)
    await add_run(client, repo, jobs=seeds(0.5))

    response = await client.get(
        "/api/v1/repos/org/exp/metrics",
        params={"workflow": "train", "job": "mnist", "metric": "loss", "branch": "main"},
    )

    assert response.status_code == 200
    assert response.json()["points"] == []


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({}, "workflow, job, metric"),
        ({"workflow": "train", "job": "mnist"}, "metric"),
        ({"workflow": "", "job": "mnist", "metric": "acc"}, "workflow"),
    ],
    ids=["none", "metric", "empty-workflow"],
)
async def test_history_names_missing_parameters(client, params, missing):
    await add_repo(client)

    response = await client.get("/api/v1/repos/org/exp/metrics", params=params)

    assert response.status_code == 400
    assert response.json()["error"] == (
        f"missing query parameter(s): {missing}; e.g. ?workflow=train&job=mnist&metric=accuracy"
    )


async def test_history_clamps_a_limit_below_one(client):
    repo = await add_repo(client)
    for value in (0.5, 0.6):
        await add_run(client, repo, jobs=seeds(value))

    for limit in (0, -1):
        response = await client.get(
            "/api/v1/repos/org/exp/metrics",
            params={"workflow": "train", "job": "mnist", "metric": "acc", "limit": limit},
        )
        assert [p["value"] for p in response.json()["points"]] == [0.6]


# --- badge tokens -------------------------------------------------------------------------


async def test_badge_token_is_created_once_and_opens_the_badge(client):
    repo = await add_repo(client, "org/secret", private=True)
    await add_run(client, repo)

    token = await ensure_badge_token(sessions(client), "org/secret")
    again = await ensure_badge_token(sessions(client), "org/secret")

    assert token == again
    assert len(token) == 32
    texts, _ = await badge(client, "/badges/org/secret/train.svg", token=token)
    assert texts == ["train", "passing"]


async def test_badge_token_of_a_local_repository_by_path_or_short_name(client):
    await add_repo(client, "/srv/git/team/model.git", provider="git", private=True)

    by_path = await ensure_badge_token(sessions(client), "/srv/git/team/model.git")
    by_name = await ensure_badge_token(sessions(client), "team/model")

    assert by_path == by_name
    texts, _ = await badge(client, "/badges/team/model/train.svg", token=by_path)
    assert texts == ["train", "unknown"]


async def test_badge_token_of_an_unknown_repository_fails(client):
    with pytest.raises(NotFound, match="no repository org/nothere is known to labci"):
        await ensure_badge_token(sessions(client), "org/nothere")
    with pytest.raises(BadRequest, match="expected OWNER/REPO"):
        await ensure_badge_token(sessions(client), "just-a-name")
