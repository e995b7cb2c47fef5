"""Rules that span several fields of a workflow, each error on its line.

They run whether or not the file's fields validate, each on the pieces it reads that do
(`labci_spec.outline`), so that one pass reports a file's every error:

- `needs` names jobs of the same file and has no cycle;
- `metrics.repeats` names an axis of the job's matrix; `exclude` names axes; the matrix
  stays within its cap (checked before expansion); with `metrics.repeats.max`, the seeds
  are integers, `max` leaves room for more of them, and all of them stay within the cap;
- one of `branches`/`branches-ignore` and of `paths`/`paths-ignore` per event;
- every `${{ }}` parses, and uses only the contexts of its field. Text a pull request
  controls (`github.head_ref`, titles, bodies) must never be spliced into a shell
  command (script injection): in `run:`, `env:` and the like only `matrix`, `inputs`,
  `env` and `secrets` expand; pull-request values reach steps as `LABCI_*` variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from labci_spec.conditions import (
    GITHUB_CONCURRENCY_FIELDS,
    GITHUB_CONDITION_FIELDS,
    STATUS_FUNCTIONS,
)
from labci_spec.errors import ExpressionError, SpecError
from labci_spec.expressions import (
    condition_source,
    find_expressions,
    functions_called,
    parse_expression,
    references,
)
from labci_spec.matrix import (
    MAX_MATRIX_JOBS,
    MatrixTooLarge,
    expand_matrix,
    is_seed,
    matrix_keys,
    repeat_groups,
    seed_values,
)
from labci_spec.messages import dotted, hint_for
from labci_spec.model import Matrix
from labci_spec.outline import JobOutline, outline
from labci_spec.yamlnodes import Data, Location, describe

SHELL_CONTEXTS = ("matrix", "inputs", "env", "secrets")
PLAN_CONTEXTS = ("matrix", "inputs")
CONDITION_CONTEXTS = ("matrix", "inputs", "env", "github")
CACHE_KEY_CONTEXTS = ("matrix", "inputs", "env")
_INJECTION = (
    "cannot be used here: text a pull request controls, spliced into a shell command, "
    "is a script-injection hole; steps read it from the LABCI_* environment variables "
    "(e.g. $LABCI_BRANCH) instead"
)


@dataclass(frozen=True)
class FieldKind:
    """What expressions a field may hold."""

    contexts: tuple[str, ...]
    functions: tuple[str, ...] = ()
    whole_is_expression: bool = False  # `if:` may omit the ${{ }}
    github_fields: tuple[str, ...] = GITHUB_CONDITION_FIELDS


SHELL = FieldKind(SHELL_CONTEXTS)
# Workflow and job `env` values are what the `env` context is made of.
ENV_VALUE = FieldKind(("matrix", "inputs", "secrets"))
PLAN = FieldKind(PLAN_CONTEXTS)
CONDITION = FieldKind(CONDITION_CONTEXTS, STATUS_FUNCTIONS, whole_is_expression=True)
CACHE_KEY = FieldKind(CACHE_KEY_CONTEXTS, ("hashfiles",))
# `concurrency:` is decided when the run is planned: no `env`, no status functions.
RUN_GROUP = FieldKind(("github", "inputs"), github_fields=GITHUB_CONCURRENCY_FIELDS)
JOB_GROUP = FieldKind(("matrix", "github", "inputs"), github_fields=GITHUB_CONCURRENCY_FIELDS)
# Location patterns ('*' is any key or index) and what each field may hold.
FIELD_KINDS: tuple[tuple[tuple[str, ...], FieldKind], ...] = (
    (("env", "*"), ENV_VALUE),
    (("defaults", "run", "working-directory"), SHELL),
    (("jobs", "*", "env", "*"), ENV_VALUE),
    (("jobs", "*", "defaults", "run", "working-directory"), SHELL),
    (("jobs", "*", "steps", "*", "run"), SHELL),
    (("jobs", "*", "steps", "*", "name"), SHELL),
    (("jobs", "*", "steps", "*", "working-directory"), SHELL),
    (("jobs", "*", "steps", "*", "env", "*"), SHELL),
    (("jobs", "*", "steps", "*", "if"), CONDITION),
    (("jobs", "*", "if"), CONDITION),
    (("jobs", "*", "name"), PLAN),
    (("jobs", "*", "runs-on"), PLAN),
    (("jobs", "*", "runs-on", "*"), PLAN),
    (("jobs", "*", "container"), PLAN),
    (("jobs", "*", "container", "image"), PLAN),
    (("jobs", "*", "cache", "key"), CACHE_KEY),
    (("concurrency",), RUN_GROUP),
    (("concurrency", "group"), RUN_GROUP),
    (("concurrency", "cancel-in-progress"), RUN_GROUP),
    (("jobs", "*", "concurrency"), JOB_GROUP),
    (("jobs", "*", "concurrency", "group"), JOB_GROUP),
    (("jobs", "*", "concurrency", "cancel-in-progress"), JOB_GROUP),
)


def field_kind(loc: Location) -> FieldKind | None:
    for pattern, kind in FIELD_KINDS:
        if len(pattern) == len(loc) and all(
            p in ("*", part) for p, part in zip(pattern, loc, strict=True)
        ):
            return kind
    return None


class _Checker:
    """Checks the outline of a workflow: every rule whose pieces validate, so that its
    errors come together with the schema's."""

    def __init__(self, data: Data, path: str) -> None:
        self.outline = outline(data.value)
        self.data = data
        self.path = path
        self.errors: list[SpecError] = []

    def fail(
        self, loc: Location, message: str, *, key: bool = False, at: int | None = None
    ) -> None:
        found, place = self.data.find(loc)
        node = (place.key or place.value) if key else place.value
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if at is not None:
            line, column = self.data.position_in_scalar(found, at)
        where = dotted(found)
        text = f"{where}: {message}" if where else message
        self.errors.append(SpecError(self.path, line, column, text))

    def run(self) -> list[SpecError]:
        self.check_triggers()
        for job_id, job in self.outline.jobs.items():
            self.check_needs(job_id, job)
            self.check_matrix(job_id, job)
            self.check_repeats(job_id, job)
        for loc, text in _strings(self.data.value, ()):
            self.check_expressions(loc, text)
        self.check_cycles()
        return self.errors

    def check_triggers(self) -> None:
        for event, filters in self.outline.filters.items():
            for name in ("branches", "paths"):
                if name in filters and f"{name}-ignore" in filters:
                    self.fail(
                        ("on", event, f"{name}-ignore"),
                        f"use `{name}` or `{name}-ignore`, not both"
                        f" (negate with '!' inside `{name}` to exclude)",
                        key=True,
                    )
            for name in ("branches-ignore", "paths-ignore"):
                for index, pattern in enumerate(filters.get(name, [])):
                    if pattern.startswith("!"):
                        self.fail(
                            ("on", event, name, index),
                            f"'!' has no meaning in `{name}`; use `{name.removesuffix('-ignore')}`"
                            " with '!' patterns to include and exclude",
                        )

    def check_needs(self, job_id: str, job: JobOutline) -> None:
        jobs = list(self.outline.jobs)
        for index, need in enumerate(job.needs or []):
            loc = ("jobs", job_id, "needs", index)
            if need == job_id:
                self.fail(loc, "a job cannot need itself")
            elif need not in self.outline.jobs:
                self.fail(
                    loc, f"unknown job '{need}'{hint_for(need, [j for j in jobs if j != job_id])}"
                )

    def check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in self.outline.jobs:
            cycle = self._find_cycle(start, [], state)
            if cycle:
                path = " → ".join(cycle)
                self.fail(("jobs", cycle[0], "needs"), f"dependency cycle: {path}", key=True)
                return

    def _find_cycle(self, job_id: str, path: list[str], state: dict[str, int]) -> list[str]:
        if state.get(job_id) == 2:
            return []
        if state.get(job_id) == 1:
            return [*path[path.index(job_id) :], job_id]
        state[job_id] = 1
        # Unknown jobs and a job needing itself have errors of their own (check_needs).
        jobs = self.outline.jobs
        needs = [n for n in jobs[job_id].needs or [] if n in jobs]
        for need in (n for n in needs if n != job_id):
            cycle = self._find_cycle(need, [*path, job_id], state)
            if cycle:
                return cycle
        state[job_id] = 2
        return []

    def check_matrix(self, job_id: str, job: JobOutline) -> None:
        matrix = job.matrix
        if matrix is None:
            return
        base: Location = ("jobs", job_id, "strategy", "matrix")
        for index, entry in enumerate(matrix.exclude):
            for key in entry:
                if key not in matrix.axes:
                    axes = ", ".join(matrix.axes) or "none"
                    self.fail(
                        (*base, "exclude", index, key),
                        f"'{key}' is not an axis of the matrix (axes: {axes})",
                        key=True,
                    )
        try:
            combinations = expand_matrix(matrix)
        except MatrixTooLarge as exc:
            self.fail(base, str(exc), key=True)
        else:
            if not combinations:
                why = "`exclude` removes every combination: the job would never run"
                self.fail(base, why, key=True)

    def check_repeats(self, job_id: str, job: JobOutline) -> None:
        axis, matrix = job.repeats, job.matrix
        if axis is None or not job.matrix_known:
            return
        if matrix is None or axis not in matrix.axes:
            axes = ", ".join(matrix.axes) if matrix and matrix.axes else ""
            why = f"axes: {axes}" if axes else "this job has no `strategy.matrix`"
            self.fail(
                ("jobs", job_id, "metrics", "repeats", "axis"),
                f"'{axis}' is not an axis of the job's matrix ({why})",
            )
        elif job.max_repeats is not None:
            self.check_max_repeats(job_id, matrix, axis, job.max_repeats)

    def check_max_repeats(self, job_id: str, matrix: Matrix, axis: str, most: int) -> None:
        """`max` adds seeds after the largest declared one, up to `most` per combination of
        the other axes; they must be integers, and there must be room for one more."""
        loc: Location = ("jobs", job_id, "metrics", "repeats", "max")
        declared = len(matrix.axes[axis])
        if most <= declared:
            self.fail(
                loc,
                f"{most} is not more than the {declared} seeds declared in matrix.{axis}"
                " (`max` counts them too)",
            )
        base: Location = ("jobs", job_id, "strategy", "matrix")
        places = [(*base, axis, i) for i in range(declared)]
        places += [(*base, "include", i, axis) for i, e in enumerate(matrix.include) if axis in e]
        for place, seed in zip(places, seed_values(matrix, axis), strict=True):
            if not is_seed(seed):
                got = describe(self.data.find(place)[1].value)
                self.fail(
                    place,
                    f"{got} is not an integer; with `metrics.repeats.max` every seed must be"
                    " (labci adds the largest + 1, + 2, …)",
                )
        try:
            groups = len(repeat_groups(matrix, axis))
        except MatrixTooLarge:
            return  # check_matrix says so
        if groups * most > MAX_MATRIX_JOBS:
            self.fail(
                loc,
                f"{most} seeds for each of {groups} combinations of the other axes would be"
                f" {groups * most} instances; the limit is {MAX_MATRIX_JOBS}",
            )

    def check_expressions(self, loc: Location, text: str) -> None:
        kind = field_kind(loc)
        try:
            if kind is not None and kind.whole_is_expression:
                source, offset = condition_source(text)
                trees = [(parse_expression(source, base_offset=offset), offset)]
            else:
                trees = [(e.tree, e.start) for e in find_expressions(text)]
        except ExpressionError as exc:
            self.fail(loc, f"invalid expression: {exc.message}", at=exc.offset)
            return
        if not trees:
            return
        if kind is None:
            self.fail(loc, "expressions (${{ }}) are not supported in this field", at=trees[0][1])
            return
        for tree, offset in trees:
            self.check_tree(loc, kind, tree, offset)

    def check_tree(self, loc: Location, kind: FieldKind, tree: Any, offset: int) -> None:
        for name, at in functions_called(tree):
            if name in STATUS_FUNCTIONS + ("hashfiles",) and name not in kind.functions:
                shown = "hashFiles" if name == "hashfiles" else name
                self.fail(loc, f"{shown}() cannot be used here", at=at)
        job = None
        if loc[0] == "jobs" and len(loc) > 1:
            job = self.outline.jobs.get(str(loc[1]))
        for ref in references(tree):
            problem = self.reference_problem(ref.path, kind, job)
            if problem:
                self.fail(loc, problem, at=ref.offset)

    def reference_problem(
        self, path: tuple[str, ...], kind: FieldKind, job: JobOutline | None
    ) -> str | None:
        name = ".".join(path)
        root = path[0]
        if root not in kind.contexts:
            if root == "github" and kind in (SHELL, ENV_VALUE):
                return f"`{name}` {_INJECTION}"
            allowed = ", ".join(kind.contexts)
            return f"`{name}`: context '{root}' is not available here (use {allowed})"
        if len(path) < 2:
            return None
        if root == "github" and path[1] not in kind.github_fields:
            fields = ", ".join(f"github.{f}" for f in kind.github_fields)
            return f"`{name}` is not available; this field can read {fields}"
        if root == "matrix" and job is not None and job.matrix_known:
            keys = matrix_keys(job.matrix)
            if not keys:
                return f"`{name}`: this job has no `strategy.matrix`"
            if path[1] not in keys:
                return f"`{name}`: the matrix has no '{path[1]}'{hint_for(path[1], sorted(keys))}"
        declared = self.outline.inputs
        if root == "inputs" and declared is not None:
            if not declared:
                return f"`{name}`: inputs exist only for `workflow_dispatch` runs, and this workflow declares none"
            if path[1] not in declared:
                return f"`{name}`: unknown input '{path[1]}'{hint_for(path[1], declared)}"
        return None


def _strings(value: Any, loc: Location) -> Iterator[tuple[Location, str]]:
    """Every string of the document with its location, plus every `if:` (which may be bare)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))
    elif isinstance(value, str) and ("${{" in value or (loc and loc[-1] == "if")):
        yield loc, value


def check_workflow(data: Data, path: str) -> list[SpecError]:
    """Every cross-field problem of a file, whether or not its fields validate: each rule
    runs on the pieces of the file it reads that do (`labci_spec.outline`)."""
    return _Checker(data, path).run()
