"""Which waiting job goes first, and where: the scheduler's decisions, without I/O.

Jobs are taken by priority; within a priority, a round robin between repositories: a
repository with fewer jobs queued or running goes first, then the one served least
recently, so one repository's 200-job sweep does not starve another's pull request check;
within a repository, oldest first. A repository's job limit and a matrix's `max-parallel`
hold back what they cap, and a `concurrency:` group one member at a time. Each job gets the runner that fits it best (placement.best_fit).

Kept apart from the database so that property tests (tests/server/test_placement.py) can
run thousands of fleets and job mixes through the very code the scheduler runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    @property
    def concurrency_group(self) -> str | None: ...


@dataclass
class Groups:
    """`concurrency:` groups (per repository) with a member in progress: the run holding
    each workflow-level group, and the job-level groups held; `of_runs` is the group of
    each candidate's run that has one. Placing a member takes its groups."""

    runs: dict[tuple[int, str], int] = field(default_factory=dict)
    jobs: set[tuple[int, str]] = field(default_factory=set)
    of_runs: Mapping[int, str] = field(default_factory=dict)

    def blocked(self, job: Queued) -> bool:
        repo = job.repository_id or 0
        group = self.of_runs.get(job.run_id)
        if group is not None and self.runs.get((repo, group), job.run_id) != job.run_id:
            return True
        return job.concurrency_group is not None and (repo, job.concurrency_group) in self.jobs

    def take(self, job: Queued) -> None:
        repo = job.repository_id or 0
        group = self.of_runs.get(job.run_id)
        if group is not None:
            self.runs.setdefault((repo, group), job.run_id)
        if job.concurrency_group is not None:
            self.jobs.add((repo, job.concurrency_group))


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
    possible: Mapping[str, list[Room]] | None = None,
    concurrency: Groups | None = None,
) -> list[Assignment]:
    """Assign what fits, in queue order. `fitting` holds, per shape key, the rooms that fit
    the shape now; taking room updates them in place, as it does `active_by_repository` and
    `groups`. `possible` holds, per GPU shape, the rooms of runners that could run it once
    enough of their jobs end: a GPU job that fits nowhere now reserves the one closest to
    fitting, and no job behind it takes GPUs there in this pass (a job without GPUs may
    still use a slot, leaving one) — else a stream of 1-GPU jobs would keep an 8-GPU job
    waiting for good. A member of a `concurrency:` group in progress (`concurrency`) waits;
    placing one takes its groups."""

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
    reserved: set[int] = set()  # runners kept for a GPU job ahead that does not fit yet
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
        if concurrency is not None and concurrency.blocked(job):
            continue
        rooms = [
            r
            for r in fitting.get(candidate.shape_key, ())
            if r.runner.id not in reserved or (candidate.shape.gpus == 0 and r.slots > 1)
        ]
        chosen = best_fit(candidate.shape, rooms)
        if chosen is None:
            full.add(candidate.shape_key)
            if candidate.shape.gpus:
                target = _closest(
                    candidate.shape, (possible or {}).get(candidate.shape_key, ()), reserved
                )
                if target is not None:
                    reserved.add(target.runner.id or 0)
            continue
        gpu_ids = chosen.take(candidate.shape)
        active_by_repository[repo] = active_by_repository.get(repo, 0) + 1
        groups[group] = groups.get(group, 0) + 1
        if concurrency is not None:
            concurrency.take(job)
        assignments.append(Assignment(job, candidate.shape, chosen.runner, gpu_ids))
    return assignments


def effective_limit(own: int | None, server_default: int) -> int | None:
    """A repository's own job limit, else the server's (`LABCI_REPOSITORY_MAX_JOBS`, 0: none);
    None: no limit."""
    if own is not None:
        return own
    return server_default or None


def _closest(shape: Shape, rooms: Iterable[Room], reserved: set[int]) -> Room | None:
    """The room with the most GPUs free that suit `shape` (then the lowest id)."""
    found = [r for r in rooms if r.runner.id not in reserved]
    if not found:
        return None
    return min(found, key=lambda r: (-len(r.gpus_fitting(shape)), r.runner.id or 0))


def at_max_parallel(job: Queued, active: int) -> bool:
    """`strategy.max-parallel`: at most that many instances of a matrix job run at once."""
    return job.max_parallel is not None and active >= job.max_parallel
