"""Which waiting job goes first, and where: the scheduler's decisions, without I/O.

Jobs are taken by priority; within a priority, a round robin between repositories: a
repository with fewer jobs queued or running goes first, then the one served least
recently, so one repository's 200-job sweep does not starve another's pull request check;
within a repository, oldest first. A repository's job limit and a matrix's `max-parallel`
hold back what they cap. Each job gets the runner that fits it best (placement.best_fit).

Kept apart from the database so that property tests (tests/server/test_placement.py) can
run thousands of fleets and job mixes through the very code the scheduler runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..db.models import Runner
from .placement import Room, best_fit
from .shapes import Shape


class Queued(Protocol):
    """A pending job as the order needs it: a row (db.queries.queue.QueuedJob) or a Job."""

    @property
    def id(self) -> int | None: ...
    @property
    def run_id(self) -> int: ...
    @property
    def workflow_job(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def repository_id(self) -> int | None: ...
    @property
    def max_parallel(self) -> int | None: ...


@dataclass
class Candidate:
    job: Queued
    shape: Shape
    shape_key: str
    rank: int  # its place in its repository's queue of this shape


@dataclass
class Assignment:
    job: Queued
    shape: Shape
    runner: Runner
    gpu_ids: list[str]  # as planned; the claim chooses again with the runner's row locked


def plan_assignments(
    candidates: list[Candidate],
    fitting: Mapping[str, list[Room]],
    *,
    active_by_repository: dict[int, int],
    last_served: Mapping[int, float],
    limits: Mapping[int, int | None],
    groups: dict[tuple[int, str], int],
) -> list[Assignment]:
    """Assign what fits, in queue order. `fitting` holds, per shape key, the rooms whose
    runners can run the shape (labels, capabilities); taking room updates them in place,
    as it does `active_by_repository` and `groups`."""

    def order(c: Candidate) -> tuple[int, int, float, int]:
        repo = c.job.repository_id or 0
        return (
            -c.job.priority,
            active_by_repository.get(repo, 0) + c.rank,
            last_served.get(repo, 0.0),
            c.job.id or 0,
        )

    assignments: list[Assignment] = []
    full: set[str] = set()  # shapes no runner has room for any more in this pass
    for candidate in sorted(candidates, key=order):
        if candidate.shape_key in full:
            continue
        job, repo = candidate.job, candidate.job.repository_id or 0
        limit = limits.get(repo)
        if limit is not None and active_by_repository.get(repo, 0) >= limit:
            continue
        group = (job.run_id, job.workflow_job)
        if at_max_parallel(job, groups.get(group, 0)):
            continue
        chosen = best_fit(candidate.shape, fitting.get(candidate.shape_key, ()))
        if chosen is None:
            full.add(candidate.shape_key)
            continue
        gpu_ids = chosen.take(candidate.shape)
        active_by_repository[repo] = active_by_repository.get(repo, 0) + 1
        groups[group] = groups.get(group, 0) + 1
        assignments.append(Assignment(job, candidate.shape, chosen.runner, gpu_ids))
    return assignments


def at_max_parallel(job: Queued, active: int) -> bool:
    """`strategy.max-parallel`: at most that many instances of a matrix job run at once."""
    return job.max_parallel is not None and active >= job.max_parallel
