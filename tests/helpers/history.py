"""Finished branch runs with a metric's values (one per repeat), as the history and badge
pages read them."""

from __future__ import annotations

from typing import Any

from labci_server.db.models import Event, Job, Metric, Run


async def add_measured_run(
    sessions: Any,
    repo_id: int,
    *,
    serial: int,
    values: tuple[float, ...],
    workflow: str = "train",
    job: str = "fit",
    metric: str = "acc",
    branch: str = "main",
    pr: int | None = None,
) -> int:
    """A finished, successful push run on `branch` (a pull request's run, with `pr`) at
    commit `serial` (hex, 40 digits), with one successful job per value; its id."""
    sha = f"{serial:040x}"
    async with sessions() as session, session.begin():
        trigger = "push" if pr is None else "pull_request"
        event = Event(delivery_id=f"measured-{serial}", provider="github", kind=trigger,
                      repository_id=repo_id, commit_sha=sha, branch=branch,
                      pr_number=pr)  # fmt: skip
        session.add(event)
        await session.flush()
        run = Run(event_id=event.id or 0, repository_id=repo_id,
                  workflow_path=f".labci/{workflow}.yml", workflow_name=workflow,
                  commit_sha=sha, trigger=trigger, branch=branch, pr_number=pr,
                  state="finished",
                  conclusion="success", created_at=1_700_000_000.0 + 60 * serial,
                  finished_at=1_700_000_030.0 + 60 * serial)  # fmt: skip
        session.add(run)
        await session.flush()
        for index, value in enumerate(values):
            row = Job(run_id=run.id or 0, job_key=f"{job} #{index}", workflow_job=job,
                      context=f"labci/{workflow}/{job}", spec={}, runs_on=["cpu"],
                      timeout_s=60, state="success")  # fmt: skip
            session.add(row)
            await session.flush()
            session.add(Metric(job_id=row.id or 0, attempt=1, name=metric, value=value))
        return run.id or 0
