"""Operations (issue 12): `/metrics` shows the queue, the outbox, runners and job durations
as the database has them, and this process's webhook latency; `/readyz` names what failed."""

from __future__ import annotations

from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families
from test_http_guards import WRONG_SIGNATURE, open_client
from test_planning import push_event
from test_scheduling import WORKFLOW, registered_runner

from helpers.gitrepo import make_repo
from helpers.server import test_settings
from labci_server.db.engine import make_engine, make_sessionmaker
from labci_server.db.models import OutboxMessage, Runner
from labci_server.db.queries import jobs as job_queries
from labci_server.planning.planner import plan_event
from labci_server.scheduling.scheduler import schedule_jobs
from labci_server.webhooks.ingest import store_event


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_queues_outbox_runners_and_durations(tmp_path, database_url, redis_url):
    repo = make_repo(tmp_path)
    sha = repo.commit({".labci/many.yml": WORKFLOW})
    async for client in open_client(test_settings(database_url, redis_url)):
        sc = client.app.state.context
        await registered_runner(sc, ["self-hosted", "cpu"], 2)
        async with sc.sessions() as session, session.begin():  # registered, never online
            session.add(Runner(name="gpu-off", labels=["gpu"], token_hash="off"))
        await plan_event(sc, await store_event(sc, push_event(repo.bare, sha, "d")) or 0)
        await schedule_jobs(sc)  # a and b queued on runner "r"; c (cpu) and g (gpu) pending
        async with sc.sessions() as session, session.begin():
            job = await job_queries.get_job(session, 1)
            job.state, job.started_at = "success", job.created_at + 3
            job.finished_at = job.started_at + 20
            session.add(job)
            session.add(
                OutboxMessage(
                    repository_id=1,
                    commit_sha=sha,
                    context="x",
                    state="error",
                    description="refused",
                    status="dead",
                )
            )
        await client.post("/webhooks/github", content=b"{}", headers=WRONG_SIGNATURE)
        answer = await client.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain")
    got = samples(answer.text)
    assert got[("labci_jobs_pending", (("label", "cpu"),))] == 1
    assert got[("labci_jobs_pending", (("label", "gpu"),))] == 1
    assert got[("labci_runner_jobs", (("runner", "r"), ("state", "queued")))] == 1
    assert got[("labci_runners_online", ())] == 1
    assert got[("labci_outbox_messages", (("kind", "status"), ("status", "dead")))] == 1
    assert got[("labci_events_total", (("state", "planned"),))] == 1
    run = (("outcome", "success"),)
    assert got[("labci_job_run_seconds_count", run)] == 1
    assert got[("labci_job_run_seconds_sum", run)] == 20
    assert got[("labci_job_run_seconds_bucket", (("le", "15.0"), *run))] == 0
    assert got[("labci_job_run_seconds_bucket", (("le", "30.0"), *run))] == 1
    assert got[("labci_job_wait_seconds_bucket", (("le", "5.0"), *run))] == 1
    webhook = (("code", "401"), ("forge", "github"))
    assert got[("labci_webhook_response_seconds_count", webhook)] >= 1


async def test_readyz_names_what_does_not_answer(tmp_path, database_url, redis_url):
    async for client in open_client(test_settings(database_url, redis_url)):
        ready = await client.get("/readyz")
        sc = client.app.state.context
        # Real clients of places that do not answer: a database file in a missing folder,
        # and a Redis port nobody listens on.
        dead_engine = make_engine(f"sqlite:///{tmp_path}/missing/labci.db")
        sc.sessions = make_sessionmaker(dead_engine)
        sc.redis = ArqRedis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        not_ready = await client.get("/readyz")
        alive = await client.get("/healthz")
        metrics = await client.get("/metrics")  # the process's own still answer
        await sc.redis.aclose()
        await dead_engine.dispose()
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "redis": "ok"},
    )
    assert not_ready.status_code == 503
    body = not_ready.json()
    assert body["status"] == "not ready"
    assert "unable to open database file" in body["database"]
    assert body["redis"].startswith("ConnectionError") or "refused" in body["redis"]
    assert alive.status_code == 200
    assert metrics.status_code == 200
    assert "labci_jobs_pending" not in metrics.text
