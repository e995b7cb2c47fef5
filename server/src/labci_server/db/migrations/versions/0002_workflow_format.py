"""workflow format: manual runs with inputs, matrix instances of a job

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("workflow_path", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "workflow_job",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
    op.execute("UPDATE jobs SET workflow_job = job_key WHERE workflow_job = ''")
    _rewrap_job_specs()


def _rewrap_job_specs() -> None:
    """Jobs planned before this revision hold a bare v0 `Job` as their spec; the server and
    runners now read a `JobInstance`. Jobs in flight across the upgrade keep working."""
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer),
        sa.column("run_id", sa.Integer),
        sa.column("job_key", sa.String),
        sa.column("spec", sa.JSON),
    )
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("workflow_name", sa.String))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.job_key, jobs.c.spec, runs.c.workflow_name).join(
            runs, runs.c.id == jobs.c.run_id
        )
    ).all()
    for job_id, job_key, spec, workflow_name in rows:
        if not isinstance(spec, dict) or "job" in spec:
            continue
        bind.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(spec=instance_of_v0_job(spec, job_key=job_key, workflow=workflow_name))
        )


def instance_of_v0_job(spec: dict[str, Any], *, job_key: str, workflow: str) -> dict[str, Any]:
    """A v0 job spec (`runs_on`, `timeout_minutes`, ...) as a JobInstance's JSON."""
    job: dict[str, Any] = {
        "id": spec.get("id", job_key),
        "name": spec.get("name"),
        "runs-on": spec.get("runs_on") or ["self-hosted"],
        "env": spec.get("env") or {},
        "timeout-minutes": spec.get("timeout_minutes", 60),
        "steps": [
            {k: v for k, v in step.items() if k in ("name", "run", "env") and v is not None}
            for step in spec.get("steps") or []
        ],
    }
    metrics = spec.get("metrics")
    if isinstance(metrics, dict) and metrics.get("file"):
        job["metrics"] = {"file": metrics["file"]}
    return {
        "workflow": workflow,
        "job_id": job_key,
        "key": job_key,
        "group": job_key,
        "matrix": {},
        "inputs": {},
        "job": job,
    }


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("workflow_job")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("inputs")
        batch.drop_column("workflow_path")
