"""The run page as a browser gets it (issue 13, item 3): the newest commit status per context,
each step folded or open with its duration and its own lines, the log's tail with earlier
stretches on demand, links to the forge, the baseline and the commit's other runs, the jobs
as a graph, why a job waits, a readable record, and re-run buttons for writers only."""

from __future__ import annotations

import time
from typing import Any

from bs4 import BeautifulSoup

from helpers.people import bearer, make_token, make_user
from labci_server.db.models import (
    ContextVerdict,
    Event,
    Job,
    OutboxMessage,
    Repository,
    Run,
    Runner,
    Step,
)
from labci_server.db.queries import jobs as job_queries
from labci_spec import Job as JobSpec
from labci_spec import JobInstance

SHA = "b" * 40
HTML = {"accept": "text/html"}


async def add_run(
    session: Any, repo: Repository | None = None, *, name: str = "octo/exp", **fields: Any
) -> Run:
    if repo is None:
        repo = Repository(provider="github", full_name=name, clone_url="x", private=False)
        session.add(repo)
        await session.flush()
    event = Event(delivery_id=f"d{time.monotonic_ns()}", provider="github", kind="push",
                  repository_id=repo.id or 0, commit_sha=fields.get("commit_sha", SHA),
                  branch="main", sender="ada", title="Tune the LR")  # fmt: skip
    session.add(event)
    await session.flush()
    values = {"workflow_path": ".labci/t.yml", "workflow_name": "t", "commit_sha": SHA,
              "trigger": "push", "branch": "main", "state": "running", **fields}  # fmt: skip
    run = Run(event_id=event.id or 0, repository_id=repo.id or 0, **values)
    session.add(run)
    await session.flush()
    return run


async def add_job(session: Any, run: Run, key: str, **fields: Any) -> Job:
    values = {"context": f"labci/t/{key}", "spec": {}, "runs_on": ["cpu"], "timeout_s": 60,
              "state": "running", "workflow_job": key, **fields}  # fmt: skip
    job = Job(run_id=run.id or 0, job_key=key, **values)
    session.add(job)
    await session.flush()
    return job


def spec_of(key: str) -> dict[str, Any]:
    """A planned job's spec, as planning stores it (what a re-run reads again)."""
    job = JobSpec.model_validate({"id": key, "runs-on": ["cpu"], "steps": [{"run": "true"}]})
    instance = JobInstance(workflow="t", job_id=key, key=key, group=key, job=job)
    return instance.model_dump(mode="json", by_alias=True)


def lines(*texts: str, step: int = 0, start: int = 0) -> list[dict[str, Any]]:
    return [{"seq": start + n, "step": step, "stream": "stdout", "text": t, "ts": 1_700_000_000.25}
            for n, t in enumerate(texts)]  # fmt: skip


def soup_of(page: Any) -> BeautifulSoup:
    assert page.status_code == 200, page.text
    return BeautifulSoup(page.text, "html.parser")


def texts(tags: Any) -> list[str]:
    return [" ".join(tag.get_text(" ", strip=True).split()) for tag in tags]


async def test_statuses_are_the_newest_and_steps_fold_with_their_own_lines(site):
    async with site.sessions() as session, session.begin():
        run = await add_run(session)
        job = await add_job(session, run, "fit")
        now = time.time()
        session.add(Step(job_id=job.id or 0, attempt=1, index=0, name="prepare",
                         status="success", exit_code=0, started_at=now - 100,
                         finished_at=now - 35))  # fmt: skip
        session.add(Step(job_id=job.id or 0, attempt=1, index=1, name="train",
                         status="running", started_at=now - 30))  # fmt: skip
        for state, description in (("pending", "queued"), ("success", "accuracy 0.93")):
            session.add(OutboxMessage(repository_id=run.repository_id, commit_sha=SHA,
                                      context="labci/t/fit", state=state,
                                      description=description, status="sent"))  # fmt: skip
        await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1,
                                        lines=lines("checked out", "deps ok") +
                                        lines("epoch 1", step=1, start=2))  # fmt: skip
        run_id, job_id = run.id, job.id
    page = soup_of(await site.client.get(f"/runs/{run_id}", headers=HTML))
    statuses = [texts(tr.find_all("td")) for tr in page.select("table.statuses tbody tr")]
    assert statuses == [["labci/t/fit", "success", "accuracy 0.93", "sent"]]
    section = page.select_one(f"section#job-{job_id}")
    steps = section.select("details.step")
    assert texts(s.summary for s in steps) == ["success prepare 1 min 05 s · exit 0",
                                               texts([steps[1].summary])[0]]  # fmt: skip
    assert texts([steps[1].summary])[0].startswith("running train ")
    assert texts([steps[1].summary])[0].endswith(" s so far")
    # The running step is open; the one that succeeded folds to its headline.
    assert [s.has_attr("open") for s in steps] == [False, True]
    assert [[ln.contents[-1] for ln in s.select(".line")] for s in steps] == [
        ["checked out", "deps ok"],
        ["epoch 1"],
    ]
    first = steps[0].select_one(".line")
    assert first["id"] == f"L{job_id}-1"
    assert first.select_one("a.n")["href"] == f"#L{job_id}-1"
    assert first["data-t"] == "22:13:20.250"  # shown when "timestamps" is ticked
    assert section.select_one(f'a[href="/jobs/{job_id}/log.txt"]') is not None
    assert section["data-stream"] == f"/jobs/{job_id}/logs/stream?after=2"


async def test_a_long_log_shows_its_tail_and_earlier_stretches_on_demand(site):
    """Where a failure prints is the end: the page opens on the last 5,000 lines, and each
    "show earlier" brings the 5,000 before (the page's script puts them in their steps;
    the link works alone)."""
    async with site.sessions() as session, session.begin():
        run = await add_run(session, state="finished")
        job = await add_job(session, run, "fit", state="failure")
        await job_queries.add_log_lines(
            session, job_id=job.id or 0, attempt=1, lines=lines(*(f"n{n}" for n in range(12_000)))
        )
        run_id, job_id = run.id, job.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    shown = [span.contents[-1] for span in page.select("pre.log .line")]
    assert shown == [f"n{n}" for n in range(7_000, 12_000)]
    # A failed job with no step row: its lines' box is open.
    assert page.select_one("details.step").has_attr("open")
    earlier = page.select_one(f"#job-{job_id} a.earlier")
    assert earlier["href"] == f"/jobs/{job_id}/log?before=7000"
    stretches = []
    while earlier is not None:
        # The page's script asks for the bare lines, to put each in its step.
        answer = await site.client.get(earlier["href"], headers={"x-labci-fragment": "1"})
        assert not answer.text.startswith("<!doctype")
        part = BeautifulSoup(answer.text, "html.parser")
        stretches.append([span.contents[-1] for span in part.select(".line")])
        earlier = part.select_one("a.earlier")
    assert stretches == [[f"n{n}" for n in range(2_000, 7_000)], [f"n{n}" for n in range(2_000)]]
    # Followed without script, the link opens a page of its own, in the layout.
    alone = soup_of(await site.client.get(f"/jobs/{job_id}/log?before=7000"))
    assert alone.h1.get_text() == "fit: lines before 7001"
    assert len(alone.select("pre.log .line")) == 5_000
    assert alone.select_one("a.earlier")["href"] == f"/jobs/{job_id}/log?before=2000"
    assert alone.find("a", string="back to the run")["href"] == f"/runs/{run_id}#job-{job_id}"


async def test_the_header_links_the_forge_the_baseline_and_the_commits_other_runs(site):
    async with site.sessions() as session, session.begin():
        base = await add_run(session, commit_sha="a" * 40, state="finished", conclusion="success")
        repo = await session.get(Repository, base.repository_id)
        run = await add_run(session, repo, trigger="pull_request", branch="tune", pr_number=7)
        again = await add_run(session, repo, trigger="pull_request", branch="tune", pr_number=7,
                              state="finished", conclusion="failure")  # fmt: skip
        session.add(ContextVerdict(run_id=run.id or 0, repository_id=repo.id or 0,
                                   commit_sha=SHA, context="labci/t/fit", state="failure",
                                   description="1 regression",
                                   details={"baseline": {"run_id": base.id, "commit": "a" * 40,
                                                         "source": "main",
                                                         "same_hardware": True}}))  # fmt: skip
        run_id, base_id, again_id = run.id, base.id, again.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    head = page.select_one("header#run-head")
    assert head.select_one("h1 .badge").get_text() == "running"
    assert head.select_one("a.commit")["href"] == f"https://github.com/octo/exp/commit/{SHA}"
    assert head.select_one("a.pr")["href"] == "https://github.com/octo/exp/pull/7"
    assert head.find("a", string="labci's comment")["href"] == f"/runs/{run_id}/pull-request"
    assert "#7 Tune the LR" in head.get_text(" ", strip=True)
    assert head.select_one("a.baseline")["href"] == f"/runs/{base_id}"
    others = head.select_one("dd.others")
    assert others.select_one("a")["href"] == f"/runs/{again_id}"  # same commit, not the base
    assert texts(others.select(".badge")) == ["failure"]
    assert "by ada" in head.get_text(" ", strip=True)
    verdict = page.select_one('section.verdict[data-context="labci/t/fit"]')
    compare = verdict.find("a", string="compare with the baseline run")
    assert compare["href"] == f"/runs/{base_id}/compare?with={run_id}"


async def test_jobs_with_needs_are_drawn_as_a_graph(site):
    async with site.sessions() as session, session.begin():
        run = await add_run(session)
        prep = await add_job(session, run, "prep", state="success")
        for n, state in enumerate(("success", "running")):
            await add_job(session, run, f"train ({n})", workflow_job="train", state=state,
                          spec={"job": {"needs": ["prep"]}})  # fmt: skip
        await add_job(session, run, "report", state="waiting",
                      spec={"job": {"needs": ["train", "prep"]}})  # fmt: skip
        plain = await add_run(session, name="octo/plain")
        await add_job(session, plain, "alone")
        run_id, plain_id, prep_id = run.id, plain.id, prep.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    nodes = {a["data-job"]: a for a in page.select("svg.graph a.node")}
    assert list(nodes) == ["prep", "train", "report"]
    assert [sorted(nodes[n]["class"]) for n in nodes] == [
        ["node", "success"],
        ["node", "running"],  # the worst of its instances
        ["node", "waiting"],
    ]
    assert nodes["train"].text.strip().endswith("train (1/2)")
    assert nodes["prep"]["href"] == f"#job-{prep_id}"
    edges = {(p["data-from"], p["data-to"]) for p in page.select("svg.graph path.edge")}
    assert edges == {("prep", "train"), ("train", "report"), ("prep", "report")}
    # Columns by depth: prep, then train, then report.
    xs = [int(nodes[n].rect["x"]) for n in ("prep", "train", "report")]
    assert xs[0] < xs[1] < xs[2]
    report = page.select_one("section.job[data-state=waiting]")
    assert report.select_one("p.waiting").get_text() == "waiting for train, prep"
    alone = soup_of(await site.client.get(f"/runs/{plain_id}"))
    assert alone.select_one("svg.graph") is None  # nothing needs anything: no graph


async def test_a_pending_job_says_why_it_waits_and_its_place_in_the_queue(site):
    now = time.time()
    async with site.sessions() as session, session.begin():
        session.add(Runner(name="cpu-1", labels=["cpu"], token_hash="t1", last_heartbeat_at=now))
        session.add(Runner(name="gpu-gone", labels=["gpu"], token_hash="t2",
                           last_heartbeat_at=now - 3600))  # fmt: skip
        older = await add_run(session, name="octo/older")
        await add_job(session, older, "first", state="pending")
        run = await add_run(session)
        one = await add_job(session, run, "one", state="pending")
        two = await add_job(session, run, "two", state="pending")
        gpu = await add_job(session, run, "big", state="pending", runs_on=["gpu", "a100"])
        boxed = await add_job(session, run, "boxed", state="pending",
                              spec={"job": {"container": {"image": "x"}}})  # fmt: skip
        run_id = run.id
        ids = one.id, two.id, gpu.id, boxed.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    said = [page.select_one(f"#job-{i} p.waiting").get_text() for i in ids]
    assert said == [
        "waiting for a free runner with [cpu] (1 online); 2nd in the queue",
        "waiting for a free runner with [cpu] (1 online); 3rd in the queue",
        "no online runner with [gpu, a100]",
        "no online runner with [cpu] that runs containers",
    ]


async def test_writers_rerun_a_job_or_the_run_and_find_the_earlier_attempts_log(site):
    async with site.sessions() as session, session.begin():
        run = await add_run(session, state="finished", conclusion="failure")
        failed = await add_job(session, run, "fit", state="failure", spec=spec_of("fit"))
        await add_job(session, run, "eval", state="success", spec=spec_of("eval"))
        await job_queries.add_log_lines(session, job_id=failed.id or 0, attempt=1,
                                        lines=lines("Traceback: out of memory"))  # fmt: skip
        run_id, job_id = run.id, failed.id
    boss = await make_user(site.sessions, "boss", admin=True)
    writer = bearer(await make_token(site.sessions, boss, scope="write"))
    reader = bearer(await make_token(site.sessions, boss, scope="read"))

    anonymous = soup_of(await site.client.get(f"/runs/{run_id}"))
    assert anonymous.find("button", string="Re-run this job") is None
    assert anonymous.find("button", string="Re-run all checks") is None
    page = soup_of(await site.client.get(f"/runs/{run_id}", headers=writer))
    assert len(page.find_all("button", string="Re-run this job")) == 2
    assert page.find("button", string="Re-run all checks") is not None
    form = page.select_one(f"#job-{job_id} form.rerun")
    context = form.select_one("input[name=context]")["value"]
    assert context == "labci/t/fit"

    refused = await site.client.post(f"/runs/{run_id}/rerun", data={"context": context},
                                     headers=reader)  # fmt: skip
    assert refused.status_code == 403
    done = await site.client.post(f"/runs/{run_id}/rerun", data={"context": context},
                                  headers=writer)  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"] == f"/runs/{run_id}"
    page = soup_of(await site.client.get(f"/runs/{run_id}", headers=writer))
    states = {s["id"]: s["data-state"] for s in page.select("section.job")}
    assert list(states.values()) == ["pending", "success"]  # only the asked-for check
    section = page.select_one(f"#job-{job_id}")
    assert "attempt 2" in section.get_text()
    assert section.select_one("p.reason").get_text() == "re-run requested by boss"
    assert section.select_one("form.rerun") is None  # going again: nothing to re-run yet
    again = await site.client.post(f"/runs/{run_id}/rerun", data={"context": context},
                                   headers={**writer, **HTML})  # fmt: skip
    assert again.status_code == 409  # pressed twice: one re-run, and the page says why
    assert "nothing to re-run in run" in again.text
    assert "labci/t/fit is still going" in again.text
    unknown = await site.client.post(f"/runs/{run_id}/rerun", data={"context": "labci/t/nope"},
                                     headers=writer)  # fmt: skip
    assert unknown.status_code == 404
    assert "has no check 'labci/t/nope'" in unknown.text
    old = section.find("a", string="attempt 1's log")
    raw = await site.client.get(old["href"])
    assert raw.text == "Traceback: out of memory\n"
    assert (await site.client.get(f"/jobs/{job_id}/log.txt?attempt=3")).status_code == 404

    # The whole run: only checks that have ended go again (fit is still pending).
    async with site.sessions() as session, session.begin():
        job = await job_queries.get_job(session, job_id or 0)
        job.state = "failure"
        session.add(job)
    assert (await site.client.post(f"/runs/{run_id}/rerun", headers=writer)).status_code == 303
    page = soup_of(await site.client.get(f"/runs/{run_id}", headers=writer))
    attempts = [s.select_one("p.muted").get_text() for s in page.select("section.job")]
    assert [a.split(" · ")[1] for a in attempts] == ["attempt 3", "attempt 2"]


async def test_progress_bars_show_their_last_drawing_and_the_record_reads_as_words(site):
    async with site.sessions() as session, session.begin():
        run = await add_run(session, state="finished", conclusion="success")
        job = await add_job(session, run, "fit", state="success", record={
            "runner": "lab-gpu-1", "commit": SHA, "matrix": {"seed": 1, "lr": 0.1},
            "executor": "docker", "image": "labci/train:1", "image_digest": "sha256:abc",
            "limits": {"cpus": 2, "memory": "4g"},
            "gpus": [{"id": "0", "model": "NVIDIA A100", "memory_mib": 40960}],
            "driver_version": "550.54", "cuda_version": "12.4", "gpu_util_mean": 87.2,
            "started_at": 1_700_000_000, "finished_at": 1_700_000_090.5, "new_field": [1, 2],
        })  # fmt: skip
        session.add(Step(job_id=job.id or 0, attempt=1, index=0, name="train", status="success"))
        bar = "\r  0%|          |\r 50%|#####     |\r100%|##########|"
        await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1,
                                        lines=lines(bar, "done"))  # fmt: skip
        run_id, job_id = run.id, job.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    shown = [span.contents[-1] for span in page.select("pre.log .line")]
    assert shown == ["100%|##########|", "done"]  # as a terminal leaves it
    raw = await site.client.get(f"/jobs/{job_id}/log.txt")
    assert raw.text == bar + "\ndone\n"  # the download keeps every byte
    record = dict(texts(tr.find_all(["th", "td"])) for tr in page.select("table.record tr"))
    assert record == {
        "commit": SHA,
        "matrix (seeds)": "seed=1, lr=0.1",
        "runner": "lab-gpu-1",
        "executor": "docker",
        "image": "labci/train:1",
        "image digest": "sha256:abc",
        "limits": "cpus=2, memory=4g",
        "GPUs": "NVIDIA A100 40 GB (gpu 0)",
        "driver": "550.54",
        "CUDA": "12.4",
        "GPU use (mean)": "87 %",
        "started": "2023-11-14 22:13:20 UTC",
        "finished": "2023-11-14 22:14:50 UTC",
        "new field": "1, 2",
        "took": "90.5 s",
    }


async def test_a_run_of_many_chatty_jobs_opens_on_each_jobs_share_of_the_page(site):
    """The page holds 20,000 lines across its jobs (5,000 at most per job, 500 at least):
    eight jobs of 3,000 lines open on their last 2,500, each with "show earlier"."""
    async with site.sessions() as session, session.begin():
        run = await add_run(session, state="finished")
        ids = []
        for n in range(8):
            job = await add_job(session, run, f"seed {n}", state="success")
            await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1,
                                            lines=lines(*(f"n{i}" for i in range(3_000))))  # fmt: skip
            ids.append(job.id)
        run_id = run.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    for job_id in ids:
        shown = [span.contents[-1] for span in page.select(f"#job-{job_id} .line")]
        assert shown == [f"n{i}" for i in range(500, 3_000)]
        assert (
            page.select_one(f"#job-{job_id} a.earlier")["href"] == f"/jobs/{job_id}/log?before=500"
        )


async def test_the_pages_refresh_reads_no_log_line_or_only_one_jobs(site):
    """The page's script refreshes its parts every few seconds: `?lines=none` reads no log
    line (a big run's refresh stays small), `?job=J` only the job that moved on."""
    async with site.sessions() as session, session.begin():
        run = await add_run(session)
        ids = []
        for key in ("a", "b"):
            job = await add_job(session, run, key)
            session.add(Step(job_id=job.id or 0, attempt=1, index=0, name="go", status="running"))
            await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1,
                                            lines=lines(f"{key}1", f"{key}2"))  # fmt: skip
            ids.append(job.id)
        run_id = run.id
    bare = soup_of(await site.client.get(f"/runs/{run_id}?lines=none"))
    assert bare.select("pre.log .line") == []
    assert len(bare.select("details.step")) == 2  # the steps, their states and durations
    one = soup_of(await site.client.get(f"/runs/{run_id}?job={ids[1]}"))
    assert [ln.contents[-1] for ln in one.select("pre.log .line")] == ["b1", "b2"]
    assert one.select_one(f"#job-{ids[1]}")["data-stream"].endswith("?after=1")
    assert (await site.client.get(f"/runs/{run_id}?lines=all")).status_code == 422


async def test_a_runners_absurd_times_do_not_break_the_page(site):
    async with site.sessions() as session, session.begin():
        run = await add_run(session, state="finished")
        job = await add_job(session, run, "fit", state="success",
                            record={"started_at": 1e300, "finished_at": 1e301})  # fmt: skip
        line = {"seq": 0, "step": 0, "stream": "stdout", "text": "x", "ts": 1e20}
        await job_queries.add_log_lines(session, job_id=job.id or 0, attempt=1, lines=[line])
        run_id = run.id
    page = soup_of(await site.client.get(f"/runs/{run_id}"))
    assert page.select_one("pre.log .line")["data-t"] == "?"
    record = dict(texts(tr.find_all(["th", "td"])) for tr in page.select("table.record tr"))
    assert record["started"] == "1e+300"
