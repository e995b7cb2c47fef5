"""The runners page (issue 13, item 6, read-only): state from heartbeats, labels, what each
runs, slots in use, the jobs it holds and its GPUs, each with the job holding it; a job of
a repository the reader cannot read is held by "a job you cannot see"."""

from __future__ import annotations

import re
import time

import httpx
from bs4 import BeautifulSoup

from helpers.people import bearer, make_token, make_user
from helpers.server import test_settings
from labci_server.app import create_app
from labci_server.db.migrate import upgrade
from labci_server.db.models import Event, Job, Repository, Run, Runner
from labci_server.scheduling.runners import create_registration_token, register_runner

GPUS = {
    "gpus": [
        {"id": "0", "model": "NVIDIA A100", "memory_mib": 40960, "healthy": True, "in_use": True,
         "utilization_pct": 87, "memory_used_mib": 30720},
        {"id": "1", "model": "NVIDIA A100", "memory_mib": 40960, "healthy": True, "in_use": True},
        {"id": "2", "model": "NVIDIA A100", "memory_mib": 40960, "healthy": False,
         "problem": "Xid 79", "in_use": False},
    ],
    "driver_version": "550.54",
    "cuda_version": "12.4",
}  # fmt: skip


async def add_job(session, runner: Runner, *, private: bool, gpus: list[str]) -> tuple[int, int]:
    name = "octo/secret" if private else "octo/open"
    repo = Repository(provider="github", full_name=name, clone_url="x", private=private)
    session.add(repo)
    await session.flush()
    event = Event(delivery_id=f"d-{name}", provider="github", kind="push",
                  repository_id=repo.id or 0, commit_sha="c" * 40, branch="main")  # fmt: skip
    session.add(event)
    await session.flush()
    run = Run(event_id=event.id or 0, repository_id=repo.id or 0, workflow_path="w",
              workflow_name="w", commit_sha="c" * 40, trigger="push", branch="main",
              state="running")  # fmt: skip
    session.add(run)
    await session.flush()
    job = Job(run_id=run.id or 0, job_key=f"fit ({name})", context="labci/w/fit", spec={},
              runs_on=["gpu"], timeout_s=60, state="running", runner_id=runner.id,
              gpu_ids=gpus)  # fmt: skip
    session.add(job)
    await session.flush()
    return run.id or 0, job.id or 0


async def test_runners_their_jobs_and_gpus(database_url, redis_url):
    await upgrade(database_url)
    # A lease of 10 minutes: the box that beat 3 s ago stays online however long a loaded
    # machine takes to set up the reader and render the page.
    app = create_app(test_settings(database_url, redis_url, lease_s=600.0))
    now = time.time()
    async with app.router.lifespan_context(app):
        sessions = app.state.context.sessions
        async with sessions() as session, session.begin():
            gpu = Runner(name="lab-gpu-1", labels=["self-hosted", "gpu"], slots=2,
                         capabilities={"host": True, "container": True}, gpus=GPUS,
                         token_hash="a", last_heartbeat_at=now - 3, version="0.1.0")  # fmt: skip
            quiet = Runner(name="lab-cpu-2", labels=["cpu"], token_hash="b",
                           last_heartbeat_at=now - 3600)  # fmt: skip
            gone = Runner(name="old-box", labels=["cpu"], token_hash="c", revoked_at=now)
            session.add_all([gpu, quiet, gone])
            await session.flush()
            open_run, open_job = await add_job(session, gpu, private=False, gpus=["0"])
            await add_job(session, gpu, private=True, gpus=["1"])
        reader = await make_user(sessions, "ada")
        token = await make_token(sessions, reader, scope="read")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labci.test") as c:
            page = await c.get("/runners", headers={**bearer(token), "accept": "text/html"})
            anonymous = await c.get("/runners")
            api = await c.get("/api/v1/runners", headers=bearer(token))
            api_anonymous = await c.get("/api/v1/runners")
    assert anonymous.status_code == 401
    assert api_anonymous.status_code == 401
    # The API has the page's rows (issue 14 item 1: for the web UI and scripts).
    listed = {row["name"]: row for row in api.json()}
    assert list(listed) == ["lab-cpu-2", "lab-gpu-1", "old-box"]
    gpu_box = listed["lab-gpu-1"]
    assert (gpu_box["state"], gpu_box["busy"], gpu_box["slots"]) == ("online", 2, 2)
    assert gpu_box["executors"] == ["docker", "process"]
    assert gpu_box["version"] == "0.1.0"
    held = [(j["key"], j["run_id"]) for j in gpu_box["jobs"]]
    assert sorted(held, key=str) == [
        ("fit (octo/open)", open_run),
        (None, None),
    ]  # private: nameless
    assert gpu_box["gpus"][0]["job"]["key"] == "fit (octo/open)"
    assert gpu_box["gpus"][0]["utilization_pct"] == 87
    assert listed["old-box"]["state"] == "revoked"
    assert "octo/secret" not in api.text
    assert page.status_code == 200
    soup = BeautifulSoup(page.text, "html.parser")
    rows = {tr["data-runner"]: tr for tr in soup.select("table.runners tbody tr")}
    assert list(rows) == ["lab-cpu-2", "lab-gpu-1", "old-box"]  # revoked last

    def cells(name: str) -> list[str]:
        return [" ".join(td.get_text(" ", strip=True).split()) for td in rows[name].find_all("td")]

    name, state, labels, executors, slots, jobs, gpus = cells("lab-gpu-1")
    # 3 s when written; more if this loaded machine took its time to render the page.
    ago = re.fullmatch(r"online last heartbeat (\d+) s ago", state)
    assert ago is not None, state
    assert 3 <= int(ago.group(1)) < 60, state
    assert (labels, executors, slots) == ("self-hosted, gpu", "docker, process", "2 / 2")
    assert jobs == "fit (octo/open) running a job you cannot see running"
    assert name == "lab-gpu-1 labci-runner 0.1.0"
    assert (
        "0: NVIDIA A100 · 40.0 GiB · 87 % busy · 30.0 GiB used · healthy · held by fit (octo/open)"
        in gpus
    )
    assert "1: NVIDIA A100 · 40.0 GiB · healthy · held by a job you cannot see" in gpus
    assert "2: NVIDIA A100 · 40.0 GiB · unhealthy: Xid 79 · free" in gpus
    assert "driver 550.54 · CUDA 12.4" in gpus
    link = rows["lab-gpu-1"].select_one("a")
    assert link["href"] == f"/runs/{open_run}#job-{open_job}"
    assert "octo/secret" not in page.text
    assert cells("lab-cpu-2")[1] == "offline last heartbeat 1 h ago"
    assert cells("lab-cpu-2")[5] == "idle"
    assert cells("old-box")[1].startswith("revoked")


async def test_administrators_drain_resume_revoke_and_remove_runners_from_the_page(site):
    async with site.sessions() as session, session.begin():
        session.add(Runner(name="lab-cpu-1", labels=["cpu"], token_hash="a",
                           last_heartbeat_at=time.time()))  # fmt: skip
    boss = bearer(
        await make_token(site.sessions, await make_user(site.sessions, "boss", admin=True))
    )
    ada = bearer(
        await make_token(site.sessions, await make_user(site.sessions, "ada"), scope="write")
    )

    async def row() -> BeautifulSoup:
        page = await site.client.get("/runners", headers={**boss, "accept": "text/html"})
        return BeautifulSoup(page.text, "html.parser").select_one('tr[data-runner="lab-cpu-1"]')

    def buttons(tr: BeautifulSoup) -> list[str]:
        return [b.get_text() for b in tr.select("td.actions button")]

    reader_page = await site.client.get("/runners", headers={**ada, "accept": "text/html"})
    assert 'td class="actions"' not in reader_page.text  # no buttons for others
    refused = await site.client.post("/runners/drain", data={"name": "lab-cpu-1"}, headers=ada)
    assert refused.status_code == 403
    assert buttons(await row()) == ["Drain", "Revoke"]

    done = await site.client.post("/runners/drain", data={"name": "lab-cpu-1"}, headers=boss)
    assert done.status_code == 303
    tr = await row()
    assert buttons(tr) == ["Resume", "Revoke"]
    assert tr.select_one(".drained").get_text().startswith("drained by boss ")
    assert (await site.client.post("/runners/resume", data={"name": "lab-cpu-1"},
                                   headers=boss)).status_code == 303  # fmt: skip
    assert buttons(await row()) == ["Drain", "Revoke"]
    assert (await site.client.post("/runners/revoke", data={"name": "lab-cpu-1"},
                                   headers=boss)).status_code == 303  # fmt: skip
    tr = await row()
    assert tr.select_one(".badge").get_text() == "revoked"
    assert buttons(tr) == ["Remove"]
    assert (await site.client.post("/runners/remove", data={"name": "lab-cpu-1"},
                                   headers=boss)).status_code == 303  # fmt: skip
    assert await row() is None  # off the list, in the API too
    listed = (await site.client.get("/api/v1/runners", headers=boss)).json()
    assert "lab-cpu-1" not in [r["name"] for r in listed]
    unknown = await site.client.post("/runners/drain", data={"name": "nobody"}, headers=boss)
    assert unknown.status_code == 404
    bad = await site.client.post("/runners/reboot", data={"name": "lab-cpu-1"}, headers=boss)
    assert bad.status_code == 404


async def test_a_heartbeat_tells_the_page_the_runners_version_and_gpu_use(site):
    sc = site.app.state.context
    answer = await register_runner(sc, registration_token=await create_registration_token(sc),
                                   name="lab-gpu-2", labels=["gpu"], slots=1)  # fmt: skip
    gpus = {"gpus": [{"id": "0", "model": "NVIDIA T4", "memory_mib": 15360, "healthy": True,
                      "in_use": False, "utilization_pct": 12, "memory_used_mib": 512}]}  # fmt: skip
    beat = await site.client.post(
        "/api/v1/runners/heartbeat",
        json={"running": [], "slots": 1, "labels": ["gpu"], "gpus": gpus, "version": "0.1.0"},
        headers=bearer(answer["runner_token"]),
    )
    assert beat.status_code == 200
    too_long = await site.client.post("/api/v1/runners/heartbeat", json={"version": "9" * 65},
                                      headers=bearer(answer["runner_token"]))  # fmt: skip
    assert too_long.status_code == 422
    boss = bearer(
        await make_token(site.sessions, await make_user(site.sessions, "boss", admin=True))
    )
    page = await site.client.get("/runners", headers={**boss, "accept": "text/html"})
    row = BeautifulSoup(page.text, "html.parser").select_one('tr[data-runner="lab-gpu-2"]')
    text = " ".join(row.get_text(" ", strip=True).split())
    assert "labci-runner 0.1.0" in text
    assert "0: NVIDIA T4 · 15.0 GiB · 12 % busy · 0.5 GiB used · healthy" in text
