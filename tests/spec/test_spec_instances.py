"""expand_job: one JobInstance per matrix combination, its key and group, what is rendered
at plan time, what is merged in from the workflow, and the JSON trip to a runner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from spec_corpus import DISPATCH_SWEEP, FULL, PATH, VALID, instances_of, job_with, load

from labci_spec import JobInstance, SpecErrors, expand_job
from labci_spec.instances import MAX_KEY_CHARS

SEEDS = job_with(
    "name: fit ${{ matrix.opt }}",
    "strategy: {matrix: {seed: [0, 1], opt: [adam, sgd]}}",
    "metrics: {repeats: seed}",
)

KEY_CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("no-matrix", job_with(), [("train", "train")]),
    (
        "repeats-axis-left-out-of-the-group",
        SEEDS,
        [
            ("train (0, adam)", "train (adam)"),
            ("train (0, sgd)", "train (sgd)"),
            ("train (1, adam)", "train (adam)"),
            ("train (1, sgd)", "train (sgd)"),
        ],
    ),
    (
        "repeats-only-axis",
        job_with("strategy: {matrix: {seed: [0, 1, 2]}}", "metrics: {repeats: seed}"),
        [("train (0)", "train"), ("train (1)", "train"), ("train (2)", "train")],
    ),
    (
        "values-as-text",
        job_with("strategy: {matrix: {v: [3.10, true, null, [1, 2], {k: v}]}}"),
        [
            ("train (3.10)", "train (3.10)"),
            ("train (true)", "train (true)"),
            ("train ()", "train ()"),
            ("train ([1,2])", "train ([1,2])"),
            ('train ({"k":"v"})', 'train ({"k":"v"})'),
        ],
    ),
    (
        "equal-combinations-get-numbered",
        job_with("strategy: {matrix: {a: [x, x, y]}}"),
        [("train (x)", "train (x)"), ("train (x) #2", "train (x)"), ("train (y)", "train (y)")],
    ),
    (
        "include-keys-are-part-of-the-key",
        job_with("strategy: {matrix: {seed: [0, 1], include: [{seed: 1, big: true}]}}"),
        [("train (0)", "train (0)"), ("train (1, true)", "train (1, true)")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in KEY_CASES], ids=[case[0] for case in KEY_CASES]
)
def test_keys_and_groups(text: str, expected: list[tuple[str, str]]) -> None:
    instances = expand_job(load(text), "train")
    assert [(i.key, i.group) for i in instances] == expected
    assert all((i.workflow, i.job_id) == ("train", "train") for i in instances)


def test_long_keys_are_cut_and_stay_unique() -> None:
    long = "x" * 300
    text = job_with(f"strategy: {{matrix: {{a: ['{long}1', '{long}2']}}}}")
    first, second = expand_job(load(text), "train")
    assert first.key.startswith("train (" + "x" * (MAX_KEY_CHARS - 18) + "… ")
    assert len(first.key) == len(second.key) == MAX_KEY_CHARS
    assert first.key != second.key  # two experiments must not share a context
    assert first.group != second.group


def test_plan_time_fields_are_rendered_and_steps_are_not() -> None:
    instances = expand_job(load(DISPATCH_SWEEP), "sweep", inputs={"optimizer": "sgd", "lr": 0.1})
    assert [(i.key, i.job.name, i.job.runs_on, i.matrix) for i in instances] == [
        ("sweep (32)", "sweep sgd", ["gpu-sgd"], {"batch": 32}),
        ("sweep (64)", "sweep sgd", ["gpu-sgd"], {"batch": 64}),
    ]
    step = instances[0].job.steps[0]
    assert step.run == "python sweep.py --lr ${{ inputs.lr }} --batch ${{ matrix.batch }}"
    assert step.env == {"TAG": "${{ inputs.tag }}"}
    assert instances[0].inputs == {"optimizer": "sgd", "lr": 0.1}
    assert instances[0].contexts == {
        "matrix": {"batch": 32},
        "inputs": {"optimizer": "sgd", "lr": 0.1},
        "env": {},
    }


def test_outside_manual_runs_inputs_are_their_defaults_and_env_is_rendered() -> None:
    instances = expand_job(load(FULL), "mnist")
    assert [(i.key, i.job.name, i.job.env["SEED"]) for i in instances] == [
        ("mnist (0, adam)", "MNIST adam", "0"),
        ("mnist (0, sgd, 0.9)", "MNIST sgd", "0"),
        ("mnist (1, adam)", "MNIST adam", "1"),
        ("mnist (1, sgd, 0.9)", "MNIST sgd", "1"),
        ("mnist (2, adam)", "MNIST adam", "2"),
    ]
    assert instances[0].inputs == {"epochs": 3, "fast": False, "optimizer": "adam", "note": ""}
    assert instances[0].job.env == {
        "DATASET": "mnist",
        "DEBUG": "false",
        "SEED": "0",
        "LR": "0.0010",
    }


def test_container_image_and_labels_are_rendered_per_combination() -> None:
    text = job_with(
        "container: 'lab/pytorch:${{ matrix.torch }}'",
        "strategy: {matrix: {torch: ['2.3', '2.4']}}",
    ).replace("runs-on: gpu", "runs-on: [gpu, 'torch-${{ matrix.torch }}']")
    rendered = [
        (i.job.container.image if i.job.container else None, i.job.runs_on)
        for i in expand_job(load(text), "train")
    ]
    assert rendered == [
        ("lab/pytorch:2.3", ["gpu", "torch-2.3"]),
        ("lab/pytorch:2.4", ["gpu", "torch-2.4"]),
    ]


def test_workflow_env_and_defaults_are_merged_under_the_job() -> None:
    text = (
        "on: push\n"
        "env: {A: workflow, B: workflow}\n"
        "defaults: {run: {shell: sh, working-directory: top}}\n"
        "jobs:\n"
        "  train:\n"
        "    runs-on: gpu\n"
        "    env: {B: job, C: job}\n"
        "    defaults: {run: {working-directory: sub}}\n"
        "    steps: [{run: x, env: {C: step}}]\n"
    )
    (instance,) = expand_job(load(text), "train")
    assert instance.job.env == {"A": "workflow", "B": "job", "C": "job"}
    assert (instance.job.defaults.run.shell, instance.job.defaults.run.working_directory) == (
        "sh",
        "sub",
    )
    assert instance.job.steps[0].env == {"C": "step"}


def test_a_label_rendered_empty_is_refused() -> None:
    text = job_with("strategy: {matrix: {l: ['', x]}}").replace(
        "runs-on: gpu", "runs-on: [gpu, '${{ matrix.l }}']"
    )
    with pytest.raises(SpecErrors) as caught:
        expand_job(load(text), "train")
    assert str(caught.value) == (
        f"{PATH}:1:1: jobs.train.runs-on[1]: must not be empty once rendered for matrix {{'l': ''}}"
    )


def test_instances_travel_as_json() -> None:
    (instance,) = expand_job(load(job_with("resources: {gpus: 1, memory: 2G}")), "train")
    sent = json.loads(json.dumps(instance.model_dump(mode="json", by_alias=True)))
    assert sent["job"]["runs-on"] == ["gpu"]
    assert sent["job"]["resources"] == {
        "gpus": 1,
        "cpus": None,
        "memory": 2 * 2**30,
        "gpu-memory": None,
    }
    assert JobInstance.model_validate(sent) == instance


@pytest.mark.parametrize("name", list(VALID), ids=list(VALID))
def test_every_instance_of_every_valid_workflow_round_trips(name: str) -> None:
    instances = instances_of(load(VALID[name]))
    assert instances
    for instance in instances:
        sent: dict[str, Any] = json.loads(
            json.dumps(instance.model_dump(mode="json", by_alias=True))
        )
        assert JobInstance.model_validate(sent) == instance
