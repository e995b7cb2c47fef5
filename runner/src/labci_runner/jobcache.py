"""A job's `cache:`, around its steps: restore after the checkout, save after a success.

The key is rendered on the runner, where `hashFiles(...)` can read the checkout; the
scope comes from the job's LABCI_* variables (see `labci_runner.cache`). A cache problem
is written to the job's log and never fails the job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from labci_runner.cache import CacheScope, RunnerCache, cache_scope, hash_files
from labci_runner.client import Assignment
from labci_runner.logs import LogSink
from labci_spec import EvalContext, ExpressionError, JobInstance, render


@dataclass(frozen=True)
class CachePlan:
    scope: CacheScope
    key: str
    paths: list[str]


async def restore_job_cache(
    cache: RunnerCache | None,
    assignment: Assignment,
    instance: JobInstance,
    src: Path,
    logs: LogSink,
) -> CachePlan | None:
    """Restore the job's `cache:`; a cache problem is logged, never a failed job."""
    spec = instance.job.cache
    if spec is None or cache is None:
        return None
    try:
        functions = {"hashfiles": lambda *patterns: hash_files(src, [str(p) for p in patterns])}
        key = await asyncio.to_thread(
            render, spec.key, EvalContext(contexts=instance.contexts, functions=functions)
        )
        plan = CachePlan(cache_scope(assignment.clone_url, assignment.env), key, spec.paths)
        restored = await asyncio.to_thread(cache.restore, plan.scope, key, src, plan.paths)
    except (ExpressionError, OSError, ValueError) as exc:
        await logs.write(0, "system", f"cache disabled for this job: {exc}")
        return None
    await logs.write(0, "system", restored.message)
    return None if restored.hit else plan  # entries never change: save only after a miss


async def save_job_cache(
    cache: RunnerCache | None, plan: CachePlan, src: Path, logs: LogSink
) -> None:
    if cache is None:
        return
    try:
        said = await asyncio.to_thread(cache.save, plan.scope, plan.key, src, plan.paths)
    except (OSError, ValueError) as exc:
        said = f"cache not saved: {exc}"
    await logs.write(0, "system", said)
