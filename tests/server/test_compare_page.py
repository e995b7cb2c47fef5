"""Compare two runs (issue 13, item 4): B against A as a verdict judges a head against its
baseline (B's rules), and both records with what differs marked; both runs need read."""

from __future__ import annotations

import httpx
from bs4 import BeautifulSoup

from helpers.people import bearer, make_token, make_user
from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import Event, Job, Metric, Repository, Run
from labci_spec import expand_job, load_workflow

TRAIN = """\
name: train
on: push
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2, 3]}}
    steps: [{run: "python train.py --seed ${{ matrix.seed }}"}]
    metrics:
      file: m.json
      repeats: seed
      compare:
        acc: {goal: max, tolerance: 0.005}
"""
SPECS = [
    job.model_dump(mode="json", by_alias=True)
    for job in expand_job(load_workflow(TRAIN, ".labci/train.yml"), "fit")
]


async def add_run(sessions, repo_id: int, serial: int, accs: list[float], record: dict) -> int:
    sha = f"{serial:040x}"
    async with sessions() as session, session.begin():
        event = Event(delivery_id=f"c-{serial}", provider="github", kind="push",
                      repository_id=repo_id, commit_sha=sha, branch="main")  # fmt: skip
        session.add(event)
        await session.flush()
        run = Run(event_id=event.id or 0, repository_id=repo_id, workflow_path=".labci/train.yml",
                  workflow_name="train", commit_sha=sha, trigger="push", branch="main",
                  state="finished", conclusion="success")  # fmt: skip
        session.add(run)
        await session.flush()
        for spec, acc in zip(SPECS, accs, strict=True):
            job = Job(run_id=run.id or 0, job_key=f"fit ({spec['matrix']['seed']})",
                      workflow_job="fit", context="labci/train/fit", spec=spec,
                      runs_on=["cpu"], timeout_s=60, state="success",
                      record={**record, "seed": spec["matrix"]["seed"], "started_at": serial})  # fmt: skip
            session.add(job)
            await session.flush()
            session.add(Metric(job_id=job.id or 0, attempt=1, name="acc", value=acc))
        return run.id or 0


async def test_b_against_a_with_the_verdicts_statistics_and_records_side_by_side(
    database_url, redis_url
):
    await upgrade(database_url)
    app = create_app(test_settings(database_url, redis_url))
    async with app.router.lifespan_context(app):
        sessions = app.state.context.sessions
        async with sessions() as session, session.begin():
            public = Repository(
                provider="github", full_name="octo/exp", clone_url="x", private=False
            )
            secret = Repository(
                provider="github", full_name="octo/secret", clone_url="y", private=True
            )
            session.add_all([public, secret])
            await session.flush()
            public_id, secret_id = public.id or 0, secret.id or 0
        same = {"image": "sha256:aaa", "gpus": [], "driver": "550.54"}
        a = await add_run(sessions, public_id, 1, [0.950, 0.952, 0.951, 0.949], same)
        b = await add_run(sessions, public_id, 2, [0.900, 0.902, 0.901, 0.899],
                          {**same, "image": "sha256:bbb"})  # fmt: skip
        hidden = await add_run(sessions, secret_id, 3, [0.9] * 4, same)
        reader = await make_user(sessions, "ada")
        token = await make_token(sessions, reader, scope="read")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            page = await c.get(f"/runs/{a}/compare?with={b}", headers={"accept": "text/html"})
            refused = await c.get(f"/runs/{a}/compare?with={hidden}", headers=bearer(token))
            missing = await c.get(f"/runs/{a}/compare", headers=bearer(token))
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    section = soup.select_one('section[data-context="labci/train/fit"]')
    (row,) = section.select("table.verdict tbody tr")
    cells = [td.get_text() for td in row.find_all("td")]
    assert cells[0].startswith("acc")
    assert "regressed" in cells  # 4 seeds a side, 5 points worse: past the 0.005 tolerance
    assert "regressed" in row["class"]
    records = {
        tr.find("td").get_text(): ([td.get_text() for td in tr.find_all("td")[1:]], tr.get("class"))
        for tr in section.select("table.record tbody tr")
    }
    assert records["image"] == (["sha256:aaa", "sha256:bbb"], ["differs"])
    assert records["driver"] == (["550.54", "550.54"], None)
    assert "started_at" not in records  # times always differ: left out
    # Another repository's run is looked up with the reader's rights: it is not there.
    assert refused.status_code == 404
    assert missing.status_code == 422
