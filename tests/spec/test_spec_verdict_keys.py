"""The keys that tune a job's verdict (issue 11): `metrics.alpha`, `compare.<metric>.test-size`
and adaptive repeats, `metrics.repeats: {axis, max}`; the seeds such a job may add
(`extra_seeds`); and the JSON trip of all three to the server and the runner."""

from __future__ import annotations

import json

import pytest
from spec_corpus import errors_of, job_with, load, located, schema_problems

from labci_spec import Job, JobInstance, MetricsSpec, expand_job, extra_seeds

ADAPTIVE = job_with(
    "strategy: {matrix: {seed: [0, 1, 2], lr: [0.1, 0.01]}}",
    "metrics: {repeats: {axis: seed, max: 20}, alpha: 0.01,"
    " compare: {acc: {goal: max, test-size: 10000}}}",
)


def test_the_keys_load_into_the_model() -> None:
    metrics = load(ADAPTIVE).jobs["train"].metrics
    assert metrics is not None
    assert (metrics.repeats, metrics.max_repeats, metrics.alpha) == ("seed", 20, 0.01)
    assert metrics.compare["acc"].test_size == 10000


def test_defaults() -> None:
    text = job_with("strategy: {matrix: {seed: [1, 2]}}", "metrics: {repeats: seed}")
    metrics = load(text).jobs["train"].metrics
    assert metrics is not None
    assert (metrics.repeats, metrics.max_repeats, metrics.alpha) == ("seed", None, 0.05)
    compare = MetricsSpec.model_validate({"compare": {"acc": {"goal": "max"}}}).compare
    assert compare["acc"].test_size is None


@pytest.mark.parametrize(
    ("written", "repeats", "max_repeats"),
    [
        ("seed", "seed", None),
        ("{axis: seed}", "seed", None),
        ("{axis: seed, max: 4}", "seed", 4),
        ("{max: 256, axis: seed}", "seed", 256),
    ],
    ids=["axis-name", "mapping-without-max", "mapping", "max-first"],
)
def test_both_spellings_of_repeats(written: str, repeats: str, max_repeats: int | None) -> None:
    text = job_with("strategy: {matrix: {seed: [0, 1, 2]}}", f"metrics: {{repeats: {written}}}")
    metrics = load(text).jobs["train"].metrics
    assert metrics is not None
    assert (metrics.repeats, metrics.max_repeats) == (repeats, max_repeats)


def test_the_job_the_server_stores_validates_back_to_the_same_model() -> None:
    """The planner stores `model_dump(mode="json", by_alias=True)` of each instance; the
    server and the runner read it back with `JobInstance.model_validate(spec)`."""
    for instance in expand_job(load(ADAPTIVE), "train"):
        spec = json.loads(json.dumps(instance.model_dump(mode="json", by_alias=True)))
        metrics = spec["job"]["metrics"]
        assert metrics["repeats"] == {"axis": "seed", "max": 20}
        assert (metrics["alpha"], metrics["compare"]["acc"]["test-size"]) == (0.01, 10000)
        assert "max_repeats" not in metrics
        again = JobInstance.model_validate(spec)
        assert again == instance
        assert again.job.metrics is not None
        assert (again.job.metrics.repeats, again.job.metrics.max_repeats) == ("seed", 20)


def test_an_axis_name_alone_still_dumps_as_a_name() -> None:
    """Jobs stored before adaptive repeats existed read the same, and dump the same."""
    text = job_with("strategy: {matrix: {seed: [0, 1]}}", "metrics: {repeats: seed}")
    job = load(text).jobs["train"]
    dumped = job.model_dump(mode="json", by_alias=True)
    assert dumped["metrics"]["repeats"] == "seed"
    assert Job.model_validate(dumped) == job


def test_editors_accept_both_spellings_and_the_new_keys() -> None:
    assert schema_problems(ADAPTIVE) == []


@pytest.mark.parametrize(
    "metrics",
    [
        "{alpha: 0}",
        "{alpha: 0.5}",
        "{compare: {acc: {goal: max, test-size: 0}}}",
        "{compare: {acc: {goal: max, test-size: 1.5}}}",
        "{repeats: {axis: seed, max: 1}}",
        "{repeats: {axis: seed, by: 2}}",
        "{repeats: {max: 3}}",
        "{repeats: seed, max_repeats: 3}",
    ],
)
def test_editors_flag_what_the_loader_refuses(metrics: str) -> None:
    text = job_with("strategy: {matrix: {seed: [0]}}", f"metrics: {metrics}")
    assert len(errors_of(text)) == 1
    [problem] = schema_problems(text)
    assert problem.startswith("jobs.train.metrics: ")


SCHEMA_CASES = [
    (
        "alpha-zero",
        "metrics: {alpha: 0}",
        "5:22: jobs.train.metrics.alpha: must be more than 0.0, got 0",
    ),
    (
        "alpha-half",
        "metrics: {alpha: 0.5}",
        "5:22: jobs.train.metrics.alpha: must be less than 0.5, got 0.5",
    ),
    (
        "alpha-negative",
        "metrics: {alpha: -0.05}",
        "5:22: jobs.train.metrics.alpha: must be more than 0.0, got -0.05",
    ),
    (
        "alpha-true",
        "metrics: {alpha: true}",
        "5:22: jobs.train.metrics.alpha: expected a number, got true",
    ),
    (
        "alpha-percent",
        "metrics: {alpha: 5%}",
        '5:22: jobs.train.metrics.alpha: expected a number, got "5%"',
    ),
    (
        "alpha-nan",
        "metrics: {alpha: .nan}",
        "5:22: jobs.train.metrics.alpha: expected a number, got .nan",
    ),
    (
        "test-size-zero",
        "metrics: {compare: {acc: {goal: max, test-size: 0}}}",
        "5:53: jobs.train.metrics.compare.acc.test-size: must be at least 1, got 0",
    ),
    (
        "test-size-fraction",
        "metrics: {compare: {acc: {goal: max, test-size: 1.5}}}",
        "5:53: jobs.train.metrics.compare.acc.test-size: expected an integer, got 1.5",
    ),
    (
        "test-size-text",
        "metrics: {compare: {acc: {goal: max, test-size: '100'}}}",
        '5:53: jobs.train.metrics.compare.acc.test-size: expected an integer, got "100"',
    ),
    (
        "test-size-over-a-billion",
        "metrics: {compare: {acc: {goal: max, test-size: 1000000001}}}",
        "5:53: jobs.train.metrics.compare.acc.test-size: must be at most 1000000000,"
        " got 1000000001",
    ),
    (
        "test-size-underscore",
        "metrics: {compare: {acc: {goal: max, test_size: 100}}}",
        "5:42: jobs.train.metrics.compare.acc: unknown key 'test_size' (did you mean 'test-size'?)",
    ),
    (
        "max-one",
        "metrics: {repeats: {axis: seed, max: 1}}",
        "5:42: jobs.train.metrics.repeats.max: must be at least 2, got 1",
    ),
    (
        "max-over-the-cap",
        "metrics: {repeats: {axis: seed, max: 257}}",
        "5:42: jobs.train.metrics.repeats.max: must be at most 256, got 257",
    ),
    (
        "max-text",
        "metrics: {repeats: {axis: seed, max: many}}",
        '5:42: jobs.train.metrics.repeats.max: expected an integer, got "many"',
    ),
    (
        "repeats-misspelt-key",
        "metrics: {repeats: {axis: seed, maximum: 9}}",
        "5:37: jobs.train.metrics.repeats: unknown key 'maximum' (did you mean 'max'?)",
    ),
    (
        "repeats-without-axis",
        "metrics: {repeats: {max: 9}}",
        "5:15: jobs.train.metrics.repeats: missing required key 'axis'",
    ),
    (
        "repeats-a-list",
        "metrics: {repeats: [seed]}",
        "5:24: jobs.train.metrics.repeats: expected a matrix axis, or a mapping such as"
        " {axis: seed, max: 20}, got a list",
    ),
    (
        "max-repeats-is-no-key",
        "metrics: {repeats: seed, max_repeats: 9}",
        "5:30: jobs.train.metrics: unknown key 'max_repeats'",
    ),
]


@pytest.mark.parametrize(
    ("line", "expected"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_schema_errors(line: str, expected: str) -> None:
    text = job_with(line).replace("    steps:", "    strategy: {matrix: {seed: [0]}}\n    steps:")
    assert errors_of(text) == located(expected)


MATRIX_SEEDS = "strategy: {matrix: {seed: [0, 1, 2, 3, 4]}}"
RULE_CASES = [
    (
        "max-not-above-the-declared-seeds",
        job_with(MATRIX_SEEDS, "metrics: {repeats: {axis: seed, max: 5}}"),
        [
            "6:42: jobs.train.metrics.repeats.max: 5 is not more than the 5 seeds declared in"
            " matrix.seed (`max` counts them too)"
        ],
    ),
    (
        "mapping-names-no-axis",
        job_with(MATRIX_SEEDS, "metrics: {repeats: {axis: seeds, max: 9}}"),
        [
            "6:31: jobs.train.metrics.repeats.axis: 'seeds' is not an axis of the job's matrix"
            " (axes: seed)"
        ],
    ),
    (
        "mapping-without-a-matrix",
        job_with("metrics: {repeats: {axis: seed, max: 9}}"),
        [
            "5:31: jobs.train.metrics.repeats.axis: 'seed' is not an axis of the job's matrix"
            " (this job has no `strategy.matrix`)"
        ],
    ),
    (
        "seeds-that-are-not-integers",
        job_with(
            "strategy: {matrix: {seed: [0, a, 2.5, true], include: [{seed: x, big: 1}]}}",
            "metrics: {repeats: {axis: seed, max: 9}}",
        ),
        [
            '5:35: jobs.train.strategy.matrix.seed[1]: "a" is not an integer; with'
            " `metrics.repeats.max` every seed must be (labci adds the largest + 1, + 2, …)",
            "5:38: jobs.train.strategy.matrix.seed[2]: 2.5 is not an integer; with"
            " `metrics.repeats.max` every seed must be (labci adds the largest + 1, + 2, …)",
            "5:43: jobs.train.strategy.matrix.seed[3]: true is not an integer; with"
            " `metrics.repeats.max` every seed must be (labci adds the largest + 1, + 2, …)",
            '5:67: jobs.train.strategy.matrix.include[0].seed: "x" is not an integer; with'
            " `metrics.repeats.max` every seed must be (labci adds the largest + 1, + 2, …)",
        ],
    ),
    (
        "more-instances-than-the-matrix-cap",
        job_with(
            "strategy: {matrix: {seed: [0, 1], lr: ["
            + ", ".join(str(n) for n in range(17))
            + "]}}",
            "metrics: {repeats: {axis: seed, max: 16}}",
        ),
        [
            "6:42: jobs.train.metrics.repeats.max: 16 seeds for each of 17 combinations of the"
            " other axes would be 272 instances; the limit is 256"
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES]
)
def test_rules_of_adaptive_repeats(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


def test_text_seeds_are_fine_without_max() -> None:
    text = job_with("strategy: {matrix: {seed: [a, b]}}", "metrics: {repeats: seed}")
    assert [i.key for i in expand_job(load(text), "train")] == ["train (a)", "train (b)"]


def test_up_to_the_cap_is_fine() -> None:
    text = job_with(
        "strategy: {matrix: {seed: [0, 1], lr: [" + ", ".join(map(str, range(16))) + "]}}",
        "metrics: {repeats: {axis: seed, max: 16}}",
    )
    assert len(expand_job(load(text), "train")) == 32


def adaptive(matrix: str, most: int) -> str:
    """A job whose `seed` axis is adaptive repeats, up to `most` seeds."""
    return job_with(
        f"strategy: {{matrix: {matrix}}}", f"metrics: {{repeats: {{axis: seed, max: {most}}}}}"
    )


EXTRA_SEED_CASES = [
    ("after-the-largest", "{seed: [0, 1, 2, 3, 4]}", 20, 3, [5, 6, 7]),
    ("unordered-and-sparse", "{seed: [9, 3], lr: [1, 2]}", 5, 3, [10, 11, 12]),
    ("negative", "{seed: [-5, -7]}", 4, 2, [-4, -3]),
    (
        "include-gives-a-larger-seed",
        "{seed: [0, 1], include: [{seed: 40, big: true}]}",
        6,
        2,
        [41, 42],
    ),
    ("none-asked", "{seed: [0]}", 2, 0, []),
    ("all-the-room", "{seed: [0, 1]}", 5, 3, [2, 3, 4]),
]


@pytest.mark.parametrize(
    ("matrix", "most", "count", "expected"),
    [c[1:] for c in EXTRA_SEED_CASES],
    ids=[c[0] for c in EXTRA_SEED_CASES],
)
def test_extra_seeds(matrix: str, most: int, count: int, expected: list[int]) -> None:
    workflow = load(adaptive(matrix, most))
    assert extra_seeds(workflow.jobs["train"], count) == expected
    # Added in rounds, the seeds of a smaller round start the larger one.
    assert extra_seeds(workflow.jobs["train"], count // 2) == expected[: count // 2]
    # The server calls it on a job read back from a stored instance: the same seeds.
    instance = expand_job(workflow, "train")[0]
    stored = JobInstance.model_validate(json.loads(instance.model_dump_json(by_alias=True)))
    assert extra_seeds(stored.job, count) == expected


def test_extra_seeds_refuses_more_than_max() -> None:
    job = load(adaptive("{seed: [0, 1, 2]}", 5)).jobs["train"]
    with pytest.raises(ValueError, match=r"job 'train' may add 0 to 2 seeds, not 3"):
        extra_seeds(job, 3)
    with pytest.raises(ValueError, match=r"not -1"):
        extra_seeds(job, -1)


def test_extra_seeds_needs_adaptive_repeats() -> None:
    plain = load(job_with("strategy: {matrix: {seed: [0, 1]}}", "metrics: {repeats: seed}"))
    with pytest.raises(ValueError, match=r"job 'train' has no `metrics.repeats.max`"):
        extra_seeds(plain.jobs["train"], 1)
    with pytest.raises(ValueError, match=r"has no `metrics.repeats.max`"):
        extra_seeds(load(job_with()).jobs["train"], 1)


def test_extra_seeds_refuses_text_seeds_of_a_job_built_without_the_rules() -> None:
    job = Job.model_validate(
        {
            "id": "train",
            "runs-on": "gpu",
            "steps": [{"run": "x"}],
            "strategy": {"matrix": {"seed": ["a", "b"]}},
            "metrics": {"repeats": {"axis": "seed", "max": 4}},
        }
    )
    with pytest.raises(ValueError, match=r"the values of matrix.seed are not all integers"):
        extra_seeds(job, 1)
