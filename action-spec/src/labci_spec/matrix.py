"""Matrix expansion with GitHub Actions' semantics, bounded before anything is expanded.

    axes ─product─▶ combinations ─exclude─▶ ─include─▶ at most MAX_MATRIX_JOBS

Order: the first axis varies slowest, like GitHub. `exclude` removes every combination
that matches all of an entry's pairs. Each `include` entry is merged into every
combination whose *original* axis values it does not contradict (values added by an
earlier `include` may be overwritten); an entry merged into none becomes a combination
of its own. The product is checked against a bound first, so a 10⁵-combination matrix is
refused without building a single combination.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from labci_spec.model import Matrix

MAX_MATRIX_JOBS = 256
# Excludes may bring a larger product under the job limit; beyond this we never expand.
MAX_MATRIX_PRODUCT = 16 * MAX_MATRIX_JOBS


class MatrixTooLarge(ValueError):
    """The matrix would expand to more combinations than allowed."""


def product_size(matrix: Matrix) -> int:
    """Combinations before `exclude` and `include`: the product of the axis lengths."""
    if not matrix.axes:
        return 0
    return math.prod(len(values) for values in matrix.axes.values())


def expand_matrix(matrix: Matrix | None) -> list[dict[str, Any]]:
    """Every combination, in order; [{}] for a job without a matrix."""
    if matrix is None:
        return [{}]
    size = product_size(matrix)
    if size > MAX_MATRIX_PRODUCT:
        raise MatrixTooLarge(f"matrix has {size} combinations; the limit is {MAX_MATRIX_JOBS}")
    names = list(matrix.axes)
    combos = [dict(zip(names, values, strict=True)) for values in _product(matrix)]
    combos = [c for c in combos if not any(_matches(c, entry) for entry in matrix.exclude)]
    originals = [dict(c) for c in combos]
    extra: list[dict[str, Any]] = []
    for entry in matrix.include:
        merged = False
        for combo, original in zip(combos, originals, strict=True):
            if all(original[k] == v for k, v in entry.items() if k in original):
                combo.update(entry)
                merged = True
        if not merged:
            extra.append(dict(entry))
    result = combos + extra
    if len(result) > MAX_MATRIX_JOBS:
        raise MatrixTooLarge(
            f"matrix has {len(result)} combinations; the limit is {MAX_MATRIX_JOBS}"
        )
    return result


def _product(matrix: Matrix) -> list[tuple[Any, ...]]:
    if not matrix.axes:
        return []
    return list(itertools.product(*matrix.axes.values()))


def _matches(combo: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(key in combo and combo[key] == value for key, value in entry.items())


def matrix_keys(matrix: Matrix | None) -> set[str]:
    """Every name `matrix.<name>` can resolve to: the axes and the keys `include` adds."""
    if matrix is None:
        return set()
    keys = set(matrix.axes)
    for entry in matrix.include:
        keys.update(entry)
    return keys


def is_seed(value: Any) -> bool:
    """Whether a matrix value can be a seed labci counts on from (`metrics.repeats.max`)."""
    return isinstance(value, int) and not isinstance(value, bool)


def seed_values(matrix: Matrix, axis: str) -> list[Any]:
    """The values of the repeats `axis`: its own, then those `include` entries give it."""
    return [*matrix.axes.get(axis, []), *(entry[axis] for entry in matrix.include if axis in entry)]


def repeat_groups(matrix: Matrix, axis: str) -> list[dict[str, Any]]:
    """The combinations of the axes other than the repeats `axis`, each once: the
    experiments whose samples the `axis` values are, one commit status each."""
    groups: list[dict[str, Any]] = []
    for combination in expand_matrix(matrix):
        group = {key: value for key, value in combination.items() if key != axis}
        if group not in groups:
            groups.append(group)
    return groups
