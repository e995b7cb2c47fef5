"""The committed JSON Schema: generated from the models, a valid Draft 2020-12 schema,
accepting every valid workflow of these tests and refusing the typical wrong shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from spec_corpus import (
    MINIMAL,
    SCHEMA_PATH,
    VALID,
    job_with,
    load,
    on_with,
    schema_problems,
    step_with,
)

from labci_spec import workflow_json_schema
from labci_spec.schema import SCHEMA_ID, main, schema_text

REGENERATE = "uv run python -m labci_spec schema action-spec/schema/labci-workflow.schema.json"


def test_committed_schema_is_the_generated_one() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), f"the models changed; regenerate with `{REGENERATE}`"


def test_schema_module_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_text()


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert (schema["$schema"], schema["$id"], schema["required"]) == (
        "https://json-schema.org/draft/2020-12/schema",
        SCHEMA_ID,
        ["on", "jobs"],
    )
    assert schema == workflow_json_schema()


@pytest.mark.parametrize("name", list(VALID), ids=list(VALID))
def test_every_valid_workflow_validates(name: str) -> None:
    load(VALID[name])  # valid for labci too
    assert schema_problems(VALID[name]) == []


INVALID_SHAPES = [
    (
        "unknown-top-level-key",
        MINIMAL + "nmae: x\n",
        [": Additional properties are not allowed ('nmae' was unexpected)"],
    ),
    (
        "unknown-job-key",
        job_with("runs_on: gpu"),
        ["jobs.train: Additional properties are not allowed ('runs_on' was unexpected)"],
    ),
    (
        "github-only-step-key",
        step_with("uses: actions/checkout@v4"),
        ["jobs.train.steps.0: Additional properties are not allowed ('uses' was unexpected)"],
    ),
    (
        "timeout-word",
        job_with("timeout-minutes: two"),
        ["jobs.train.timeout-minutes: 'two' is not of type 'integer'"],
    ),
    (
        "timeout-zero",
        job_with("timeout-minutes: 0"),
        ["jobs.train.timeout-minutes: 0 is less than the minimum of 1"],
    ),
    (
        "yes-is-no-boolean",
        job_with("continue-on-error: yes"),
        ["jobs.train.continue-on-error: 'yes' is not of type 'boolean'"],
    ),
    (
        "env-list-value",
        job_with("env: {A: [1]}"),
        ["jobs.train.env.A: [1] is not of type 'string', 'number', 'boolean'"],
    ),
    (
        "unknown-event",
        on_with("pull-request"),
        ["on: 'pull-request' is not valid under any of the given schemas"],
    ),
    (
        "gpus-and-memory",
        job_with("resources: {gpus: -1, memory: 16X}"),
        [
            "jobs.train.resources.gpus: -1 is less than the minimum of 0",
            "jobs.train.resources.memory: '16X' is not valid under any of the given schemas",
        ],
    ),
    ("no-jobs", "on: push\njobs: {}\n", ["jobs: {} should be non-empty"]),
    ("jobs-missing", "on: push\n", [": 'jobs' is a required property"]),
    (
        "no-steps",
        job_with().replace("steps: [{run: x}]", "steps: []"),
        ["jobs.train.steps: [] should be non-empty"],
    ),
]


@pytest.mark.parametrize(
    ("text", "problems"),
    [case[1:] for case in INVALID_SHAPES],
    ids=[case[0] for case in INVALID_SHAPES],
)
def test_typical_wrong_shapes_are_refused(text: str, problems: list[str]) -> None:
    assert schema_problems(text) == problems
