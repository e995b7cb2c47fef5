"""Matrix expansion: GitHub's documented include/exclude examples, order, and the cap."""

from __future__ import annotations

from typing import Any

import pytest
from spec_corpus import (
    MATRIX_EXCLUDE,
    MATRIX_EXPAND,
    MATRIX_FRUIT,
    MATRIX_INCLUDE_ONLY,
    MATRIX_NODE_NPM,
    load,
)

from labci_spec import MAX_MATRIX_JOBS, expand_matrix
from labci_spec.matrix import MAX_MATRIX_PRODUCT, MatrixTooLarge, matrix_keys, product_size
from labci_spec.model import Matrix


def combos_of(text: str) -> list[dict[str, Any]]:
    strategy = load(text).jobs["train"].strategy
    assert strategy is not None
    return expand_matrix(strategy.matrix)


# The examples of GitHub's "Running variations of jobs in a workflow", with the
# combinations that page lists for each.
GITHUB_EXAMPLES = [
    (
        "fruit-animal-include",
        MATRIX_FRUIT,
        [
            {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
            {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
            {"fruit": "pear", "animal": "cat", "color": "pink"},
            {"fruit": "pear", "animal": "dog", "color": "green"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    ),
    (
        "include-adds-a-key-to-one-combination",
        MATRIX_NODE_NPM,
        [
            {"os": "windows-latest", "node": 14},
            {"os": "windows-latest", "node": 16, "npm": 6},
            {"os": "ubuntu-latest", "node": 14},
            {"os": "ubuntu-latest", "node": 16},
        ],
    ),
    (
        "include-that-would-overwrite-is-a-new-combination",
        MATRIX_EXPAND,
        [
            {"os": "windows-latest", "node": 14},
            {"os": "windows-latest", "node": 18},
            {"os": "ubuntu-latest", "node": 14},
            {"os": "ubuntu-latest", "node": 18},
            {"os": "windows-latest", "node": 16},
        ],
    ),
    (
        "exclude-partial-and-full-matches",
        MATRIX_EXCLUDE,
        [
            {"os": "macos-latest", "version": 12, "environment": "staging"},
            {"os": "macos-latest", "version": 14, "environment": "staging"},
            {"os": "macos-latest", "version": 14, "environment": "production"},
            {"os": "macos-latest", "version": 16, "environment": "staging"},
            {"os": "macos-latest", "version": 16, "environment": "production"},
            {"os": "windows-latest", "version": 12, "environment": "staging"},
            {"os": "windows-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 14, "environment": "staging"},
            {"os": "windows-latest", "version": 14, "environment": "production"},
        ],
    ),
    (
        "include-only",
        MATRIX_INCLUDE_ONLY,
        [
            {"site": "production", "datacenter": "site-a"},
            {"site": "staging", "datacenter": "site-b"},
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in GITHUB_EXAMPLES],
    ids=[case[0] for case in GITHUB_EXAMPLES],
)
def test_github_documented_examples(text: str, expected: list[dict[str, Any]]) -> None:
    assert combos_of(text) == expected


MATRIX_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "first-axis-varies-slowest",
        {"version": [10, 12, 14], "os": ["ubuntu", "windows"]},
        [
            {"version": 10, "os": "ubuntu"},
            {"version": 10, "os": "windows"},
            {"version": 12, "os": "ubuntu"},
            {"version": 12, "os": "windows"},
            {"version": 14, "os": "ubuntu"},
            {"version": 14, "os": "windows"},
        ],
    ),
    ("one-axis", {"seed": [0, 1, 2]}, [{"seed": 0}, {"seed": 1}, {"seed": 2}]),
    (
        "values-of-any-shape",
        {"cfg": [{"lr": 1}, [1, 2], None, True, "3.10"]},
        [{"cfg": {"lr": 1}}, {"cfg": [1, 2]}, {"cfg": None}, {"cfg": True}, {"cfg": "3.10"}],
    ),
    (
        "exclude-everything",
        {"a": [1, 2], "exclude": [{"a": 1}, {"a": 2}]},
        [],
    ),
    (
        "exclude-then-include-adds-back",
        {"a": [1, 2], "exclude": [{"a": 1}], "include": [{"a": 1, "b": "x"}]},
        [{"a": 2}, {"a": 1, "b": "x"}],
    ),
    (
        "exclude-needs-every-pair",
        {"a": [1, 2], "b": ["x", "y"], "exclude": [{"a": 1, "b": "z"}]},
        [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}],
    ),
    (
        "include-added-value-overwritten-by-later-include",
        {"a": [1], "include": [{"c": "first"}, {"c": "second"}]},
        [{"a": 1, "c": "second"}],
    ),
    (
        "equal-include-entries-run-twice",
        {"include": [{"a": 1}, {"a": 1}]},
        [{"a": 1}, {"a": 1}],
    ),
    (
        "types-are-not-coerced",
        {"a": [1, "1"], "exclude": [{"a": "1"}]},
        [{"a": 1}],
    ),
]


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [case[1:] for case in MATRIX_CASES],
    ids=[case[0] for case in MATRIX_CASES],
)
def test_expand_matrix(matrix: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert expand_matrix(Matrix.model_validate(matrix)) == expected


def test_no_matrix_is_one_empty_combination() -> None:
    assert expand_matrix(None) == [{}]


CAP_CASES = [
    ("at-the-limit", {"a": list(range(256))}, None),
    (
        "one-over",
        {"a": list(range(257))},
        "matrix has 257 combinations; the limit is 256",
    ),
    (
        "include-pushes-over",
        {"a": list(range(256)), "include": [{"a": "new"}]},
        "matrix has 257 combinations; the limit is 256",
    ),
    (
        "5-axes-of-10",
        {f"a{i}": list(range(10)) for i in range(5)},
        "matrix has 100000 combinations; the limit is 256",
    ),
    (
        "10-axes-of-10-never-expanded",
        {f"a{i}": list(range(10)) for i in range(10)},
        "matrix has 10000000000 combinations; the limit is 256",
    ),
    (
        "product-beyond-what-excludes-may-trim",
        {"a": list(range(MAX_MATRIX_PRODUCT + 1)), "exclude": [{"a": 0}]},
        f"matrix has {MAX_MATRIX_PRODUCT + 1} combinations; the limit is 256",
    ),
]


@pytest.mark.parametrize(
    ("matrix", "error"), [case[1:] for case in CAP_CASES], ids=[case[0] for case in CAP_CASES]
)
def test_the_cap(matrix: dict[str, Any], error: str | None) -> None:
    model = Matrix.model_validate(matrix)
    if error is None:
        assert len(expand_matrix(model)) == MAX_MATRIX_JOBS
        return
    with pytest.raises(MatrixTooLarge) as caught:
        expand_matrix(model)
    assert str(caught.value) == error


def test_excludes_bring_a_product_under_the_cap() -> None:
    matrix = Matrix.model_validate(
        {"a": list(range(300)), "exclude": [{"a": i} for i in range(100)]}
    )
    assert product_size(matrix) == 300
    assert [combo["a"] for combo in expand_matrix(matrix)] == list(range(100, 300))


KEYS_CASES: list[tuple[str, dict[str, Any] | None, set[str]]] = [
    ("none", None, set()),
    ("axes", {"a": [1], "b": [2]}, {"a", "b"}),
    ("include-keys", {"a": [1], "include": [{"c": 3}], "exclude": [{"a": 1}]}, {"a", "c"}),
]


@pytest.mark.parametrize(
    ("matrix", "keys"), [case[1:] for case in KEYS_CASES], ids=[case[0] for case in KEYS_CASES]
)
def test_matrix_keys(matrix: dict[str, Any] | None, keys: set[str]) -> None:
    model = None if matrix is None else Matrix.model_validate(matrix)
    assert matrix_keys(model) == keys


def test_matrix_dumps_as_written() -> None:
    written = {"seed": [0, 1], "include": [{"seed": 2, "big": True}], "exclude": [{"seed": 0}]}
    model = Matrix.model_validate(written)
    assert (model.axes, model.model_dump(mode="json")) == ({"seed": [0, 1]}, written)
    assert Matrix.model_validate(model.model_dump(mode="json")) == model
