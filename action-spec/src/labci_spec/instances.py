"""A job of a workflow, expanded into the instances that run: one per matrix combination.

The server plans `JobInstance`s and sends each to a runner as JSON. What the planner
knows is rendered here: `${{ matrix.* }}` and `${{ inputs.* }}` in the job's name,
`runs-on` and container image (which the scheduler needs) and in workflow and job `env`
(which `if:` conditions read). Everything inside the steps is rendered by the runner just
before each step, when `secrets` and the step's own `env` are known too. Outside manual
runs, `inputs` holds the declared inputs' defaults.

Keys: an instance is named like GitHub names matrix jobs, `train (0, adam)`; its *group*
leaves out the `metrics.repeats` axis (`train (adam)`), because repeats are samples of
one experiment and report as one commit status. With `metrics.repeats.max`, a group may
grow after planning; `extra_seeds` says with which seeds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError

from labci_spec.errors import SpecError, SpecErrors
from labci_spec.expressions import EvalContext, render, to_text
from labci_spec.fields import Frozen
from labci_spec.matrix import expand_matrix, is_seed, seed_values
from labci_spec.messages import dotted
from labci_spec.model import Job, Workflow
from labci_spec.triggers import default_inputs

PLAN_CONTEXTS = ("matrix", "inputs")
MAX_KEY_CHARS = 200


class JobInstance(Frozen):
    """One matrix combination of a job, with workflow-level env and defaults merged in."""

    workflow: str
    job_id: str
    key: str
    group: str
    matrix: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    job: Job

    @property
    def contexts(self) -> dict[str, Any]:
        """The expression contexts known before the job runs."""
        return {"matrix": self.matrix, "inputs": self.inputs, "env": self.job.env}


def expand_job(
    workflow: Workflow, job_id: str, *, inputs: Mapping[str, Any] | None = None
) -> list[JobInstance]:
    """The instances of `workflow.jobs[job_id]`, in matrix order; raises SpecErrors."""
    job = workflow.jobs[job_id]
    if inputs is None:
        inputs = default_inputs(workflow.on.workflow_dispatch)
    repeats = job.metrics.repeats if job.metrics else None
    instances: list[JobInstance] = []
    seen: set[str] = set()
    for combo in expand_matrix(job.strategy.matrix if job.strategy else None):
        ctx = EvalContext(contexts={"matrix": combo, "inputs": dict(inputs or {})})
        key = _unique(_key(job_id, combo, skip=None), seen)
        instances.append(
            JobInstance(
                workflow=workflow.name or "",
                job_id=job_id,
                key=key,
                group=_key(job_id, combo, skip=repeats),
                matrix=combo,
                inputs=dict(inputs or {}),
                job=_rendered(workflow, job, ctx),
            )
        )
    return instances


def extra_seeds(job: Job, count: int) -> list[int]:
    """The first `count` seeds labci may add to each combination of a job with
    `metrics.repeats: {axis, max}`: the largest seed the matrix declares + 1, + 2, ...
    (`[5, 6]` after `seed: [0, 1, 2, 3, 4]`; `[10]` after `seed: [3, 9]`).

    They always start from the same place: `extra_seeds(job, 4)` begins with
    `extra_seeds(job, 2)`, so a caller adding seeds in rounds asks for all it wants so
    far and starts those it has not. At most `max` seeds run in all, the declared ones
    included; asking for more, or of a job without `repeats.max`, is a ValueError (the
    rules `load_workflow` checks make every seed of such a job an integer).
    """
    metrics, strategy = job.metrics, job.strategy
    axis = metrics.repeats if metrics else None
    most = metrics.max_repeats if metrics else None
    if axis is None or most is None or strategy is None or axis not in strategy.matrix.axes:
        raise ValueError(f"job '{job.id}' has no `metrics.repeats.max`")
    seeds = seed_values(strategy.matrix, axis)
    if not all(is_seed(seed) for seed in seeds):
        raise ValueError(f"job '{job.id}': the values of matrix.{axis} are not all integers")
    room = most - len(strategy.matrix.axes[axis])
    if not 0 <= count <= room:
        raise ValueError(f"job '{job.id}' may add 0 to {room} seeds, not {count}")
    largest = max(seeds)
    return list(range(largest + 1, largest + 1 + count))


def _key(job_id: str, combo: Mapping[str, Any], *, skip: str | None) -> str:
    values = [to_text(value) for name, value in combo.items() if name != skip]
    if not values:
        return job_id
    key = f"{job_id} ({', '.join(values)})"
    if len(key) <= MAX_KEY_CHARS:
        return key
    # Cut, but keep keys of different combinations apart: two groups must never merge.
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{key[: MAX_KEY_CHARS - 11]}… {digest})"


def _unique(key: str, seen: set[str]) -> str:
    candidate, n = key, 1
    while candidate in seen:
        n += 1
        candidate = f"{key} #{n}"
    seen.add(candidate)
    return candidate


def _rendered(workflow: Workflow, job: Job, ctx: EvalContext) -> Job:
    data = job.model_dump(mode="json", by_alias=True)
    env = {**workflow.env, **job.env}
    data["env"] = {name: render(value, ctx, only=PLAN_CONTEXTS) for name, value in env.items()}
    data["defaults"] = {
        "run": {
            **workflow.defaults.run.model_dump(by_alias=True, exclude_none=True),
            **job.defaults.run.model_dump(by_alias=True, exclude_none=True),
        }
    }
    if job.name is not None:
        data["name"] = render(job.name, ctx, only=PLAN_CONTEXTS)
    data["runs-on"] = [render(label, ctx, only=PLAN_CONTEXTS) for label in job.runs_on]
    if job.container is not None:
        data["container"]["image"] = render(job.container.image, ctx, only=PLAN_CONTEXTS)
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = dotted(("jobs", job.id, *first["loc"]))
        problem = first["msg"].removeprefix("Value error, ")
        matrix = ctx.contexts.get("matrix") or {}
        message = f"{where}: {problem} once rendered for matrix {matrix}"
        raise SpecErrors([SpecError(workflow.path, 1, 1, message)]) from exc
