"""load_workflow: valid files, YAML 1.2 scalars, and the exact located text of every kind of error.

Errors of one key's typical mistakes live with that key's module tests (test_spec_triggers,
test_spec_resources, test_spec_rules, ...); here are the loader's own: YAML syntax, raw
bytes, the document's shape, unknown and duplicate keys, and several errors in one file.
"""

from __future__ import annotations

from typing import Any

import pytest
from spec_corpus import (
    FULL,
    MINIMAL,
    PATH,
    errors_of,
    job_with,
    load,
    located,
    on_with,
    step_with,
)

from labci_spec import (
    MAX_WORKFLOW_BYTES,
    Job,
    SpecError,
    SpecErrors,
    Triggers,
    Workflow,
    load_workflow,
)


def test_minimal_workflow_gets_defaults() -> None:
    workflow = load(MINIMAL)
    assert workflow == Workflow.model_validate(
        {
            "path": PATH,
            "name": "train",
            "on": {"push": None},
            "jobs": {
                "train": {"id": "train", "runs-on": ["gpu"], "steps": [{"run": "python train.py"}]}
            },
        }
    )
    job = workflow.jobs["train"]
    assert (job.timeout_s, job.needs, job.continue_on_error, job.resources.gpus) == (
        3600,
        [],
        False,
        0,
    )
    assert (job.container, job.strategy, job.metrics) == (None, None, None)


def test_full_workflow_reads_every_key() -> None:
    workflow = load(FULL.encode())
    assert (workflow.name, workflow.env, list(workflow.jobs)) == (
        "train-small",
        {"DATASET": "mnist", "DEBUG": "false"},
        ["prepare", "mnist"],
    )
    on = workflow.model_dump(mode="json", by_alias=True)["on"]
    assert on["push"]["branches"] == ["main", "release/**"]
    assert on["pull_request"]["types"] == ["opened", "synchronize", "ready_for_review"]
    assert list(on["workflow_dispatch"]["inputs"]) == ["epochs", "fast", "optimizer", "note"]
    assert on["schedule"] == [{"cron": "30 2 * * 1-5"}]
    mnist = workflow.jobs["mnist"]
    assert (mnist.name, mnist.needs, mnist.if_, mnist.runs_on) == (
        "MNIST ${{ matrix.optimizer }}",
        ["prepare"],
        "github.event_name != 'schedule'",
        ["gpu", "cuda12"],
    )
    assert mnist.env == {"SEED": "${{ matrix.seed }}", "LR": "0.0010"}
    assert mnist.timeout_s == 1800
    job = mnist.model_dump(mode="json", by_alias=True)
    assert job["container"]["options"] == "--init --shm-size=8G --ulimit nofile=4096:8192"
    assert job["resources"] == {
        "gpus": 1,
        "cpus": 7.5,
        "memory": 16 * 2**30,
        "gpu-memory": 20 * 2**30,
    }
    assert job["strategy"]["max-parallel"] == 2
    train, evaluate, done = mnist.steps
    assert train.run.endswith('--out "$LABCI_OUTPUT/metrics.json"\n')
    assert train.env == {"EPOCHS": "3", "FAST": "yes"}
    assert (evaluate.shell, evaluate.working_directory, evaluate.continue_on_error) == (
        "python",
        "eval",
        True,
    )
    assert done.display_name == "echo done"
    assert job["metrics"]["files"] == ["metrics.json", "eval/scores.csv"]
    assert job["artifacts"] == {"paths": ["checkpoints/*.pt", "plots/**"], "max-size": 512 * 2**20}
    assert job["cache"]["key"] == "data-${{ hashFiles('requirements.txt') }}"


def test_utf8_bom_is_tolerated() -> None:
    assert load(b"\xef\xbb\xbf" + MINIMAL.encode()).name == "train"


def test_the_name_defaults_to_the_file_stem() -> None:
    assert load_workflow(MINIMAL, ".labci/nightly.eval.yaml").name == "nightly.eval"


# YAML 1.2 core schema, like GitHub Actions: `yes`, `on`, `no` are strings; floats keep
# their text where text is wanted (GitHub famously turns `3.10` into 3.1).
SCALAR_CASES = [
    ("yes", "yes"),
    ("on", "on"),
    ("No", "No"),
    ("true", "true"),
    ("FALSE", "false"),
    ("0", "0"),
    ("0o17", "15"),
    ("0x1f", "31"),
    ("017", "17"),
    ("3.10", "3.10"),
    ("1e3", "1e3"),
    (".inf", ".inf"),
    ("'null'", "null"),
    ("1_000", "1_000"),
    ("2024-01-01", "2024-01-01"),
    ("'#not a comment'", "#not a comment"),
]


@pytest.mark.parametrize(("written", "value"), SCALAR_CASES, ids=[case[0] for case in SCALAR_CASES])
def test_scalars_resolve_like_yaml_1_2(written: str, value: str) -> None:
    assert load(job_with(f"env: {{V: {written}}}")).jobs["train"].env == {"V": value}


def test_on_is_a_key_and_yes_is_no_event() -> None:
    assert errors_of(on_with("yes")) == located(
        "1:5: on: unknown event 'yes' (expected one of: push, pull_request, workflow_dispatch,"
        " schedule)"
    )
    assert errors_of("true: push\njobs: {a: {runs-on: x, steps: [{run: x}]}}\n") == located(
        "1:1: missing required key 'on'",
        "1:1: unknown key 'true' (expected one of: name, on, env, defaults, concurrency, jobs)",
    )


ON_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("string", "push", {"push": {}}),
    ("pr-string", "pull_request", {"pull_request": {}}),
    ("list", "[push, pull_request]", {"push": {}, "pull_request": {}}),
    (
        "mapping-null",
        "{push: {branches: [main]}, pull_request: null}",
        {
            "push": {"branches": ["main"]},
            "pull_request": {},
        },
    ),
    ("branch-string", "{push: {branches: 'release/**'}}", {"push": {"branches": ["release/**"]}}),
    ("empty-mapping", "{pull_request: {}}", {"pull_request": {}}),
    ("dispatch", "workflow_dispatch", {"workflow_dispatch": {}}),
    ("schedule", "{schedule: [{cron: '0 0 * * *'}]}", {"schedule": [{"cron": "0 0 * * *"}]}),
]


@pytest.mark.parametrize(
    ("on", "expected"), [case[1:] for case in ON_CASES], ids=[case[0] for case in ON_CASES]
)
def test_on_forms(on: str, expected: dict[str, Any]) -> None:
    assert load(on_with(on)).on == Triggers.model_validate(expected)


ERROR_CASES = [
    (
        "unknown-key-hint",
        "on: push\njobs:\n  train:\n    runs_on: gpu\n    steps: [{run: x}]\n",
        ["4:5: jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)"],
    ),
    (
        "unknown-key-typo",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    step: [{run: x}]\n",
        ["5:5: jobs.train: unknown key 'step' (did you mean 'steps'?)"],
    ),
    (
        "unknown-key-no-hint",
        job_with("frobnicate: true"),
        [
            "5:5: jobs.train: unknown key 'frobnicate' (expected one of: name, runs-on, needs,"
            " if, env, defaults, timeout-minutes, continue-on-error, container, resources,"
            " strategy, steps, metrics, artifacts, cache, concurrency)"
        ],
    ),
    (
        "unknown-top-level-key",
        MINIMAL + "nmae: x\n",
        ["7:1: unknown key 'nmae' (did you mean 'name'?)"],
    ),
    (
        "unknown-step-key",
        step_with("timeout: 5"),
        ["7:9: jobs.train.steps[0]: unknown key 'timeout' (did you mean 'timeout-minutes'?)"],
    ),
    (
        "github-only-key-uses",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - uses: actions/checkout@v4\n",
        [
            "6:9: jobs.train.steps[0]: 'uses' is not supported: labci steps run shell commands;"
            " put the commands in `run:`"
        ],
    ),
    (
        "github-only-key-services",
        job_with("services: {db: {image: postgres}}"),
        [
            "5:5: jobs.train: 'services' is not supported: start what the experiment needs"
            " from a step, or bake it into the image"
        ],
    ),
    (
        "github-only-key-step-id",
        step_with("id: fit"),
        [
            "7:9: jobs.train.steps[0]: 'id' is not supported: steps are numbered; give them a `name:`"
        ],
    ),
    ("reserved-path", MINIMAL + "path: x.yml\n", ["7:1: unknown key 'path'"]),
    ("reserved-job-id", job_with("id: other"), ["5:5: jobs.train: unknown key 'id'"]),
    (
        "missing-keys",
        "on: push\njobs:\n  train: {name: x}\n",
        [
            "3:3: jobs.train: missing required key 'runs-on'",
            "3:3: jobs.train: missing required key 'steps'",
        ],
    ),
    (
        "missing-on-and-jobs",
        "name: x\n",
        ["1:1: missing required key 'on'", "1:1: missing required key 'jobs'"],
    ),
    (
        "duplicate-key",
        job_with("env: {A: b}", "env: {C: d}"),
        ["6:5: duplicate key 'env' (first defined on line 5)"],
    ),
    (
        "duplicate-job",
        "on: push\njobs:\n  a: {runs-on: x, steps: [{run: x}]}\n  a: {runs-on: y, steps: [{run: y}]}\n",
        ["4:3: duplicate key 'a' (first defined on line 3)"],
    ),
    (
        "duplicate-flow-key",
        job_with("env: {A: 1, A: 2}"),
        ["5:17: duplicate key 'A' (first defined on line 5)"],
    ),
    ("no-jobs", "on: push\njobs: {}\n", ["2:7: jobs: must not be empty"]),
    (
        "jobs-list",
        "on: push\njobs:\n  - runs-on: x\n",
        ["3:3: jobs: expected a mapping, got a list"],
    ),
    (
        "bad-job-id",
        "on: push\njobs:\n  1st:\n    runs-on: gpu\n    steps: [{run: x}]\n",
        [
            "3:3: jobs: invalid job id '1st' (use letters, digits, '_' and '-',"
            " starting with a letter or '_')"
        ],
    ),
    (
        "empty-steps",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps: []\n",
        ["5:12: jobs.train.steps: must not be empty"],
    ),
    (
        "step-without-run",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - name: a\n",
        ["6:9: jobs.train.steps[0]: missing required key 'run'"],
    ),
    (
        "step-run-null",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run:\n",
        ["6:13: jobs.train.steps[0].run: expected a string, got null"],
    ),
    (
        "step-run-empty",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run: '  '\n",
        ["6:14: jobs.train.steps[0].run: must not be empty"],
    ),
    (
        "step-is-a-string",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - echo hi\n",
        ['6:9: jobs.train.steps[0]: expected a mapping, got "echo hi"'],
    ),
    (
        "runs-on-empty-list",
        "on: push\njobs:\n  train:\n    runs-on: []\n    steps: [{run: x}]\n",
        ["4:14: jobs.train.runs-on: must not be empty"],
    ),
    (
        "runs-on-mapping",
        "on: push\njobs:\n  train:\n    runs-on: {gpu: 1}\n    steps: [{run: x}]\n",
        ["4:14: jobs.train.runs-on: expected a string, got a mapping"],
    ),
    (
        "runs-on-null-label",
        "on: push\njobs:\n  train:\n    runs-on: [gpu, ~]\n    steps: [{run: x}]\n",
        ["4:20: jobs.train.runs-on[1]: expected a string, got ~"],
    ),
    (
        "env-null-and-bad-name",
        job_with("env: {A: null, 'B-C': x, D: [1]}"),
        [
            "5:14: jobs.train.env.A: expected a string, got null",
            "5:20: jobs.train.env: invalid variable name 'B-C' (use letters, digits and '_',"
            " not starting with a digit)",
            "5:33: jobs.train.env.D: expected a string, got a list",
        ],
    ),
    (
        "timeout-not-int",
        job_with("timeout-minutes: two"),
        ['5:22: jobs.train.timeout-minutes: expected an integer, got "two"'],
    ),
    (
        "timeout-quoted",
        job_with("timeout-minutes: '30'"),
        ['5:22: jobs.train.timeout-minutes: expected an integer, got "30"'],
    ),
    (
        "timeout-float",
        job_with("timeout-minutes: 1.5"),
        ["5:22: jobs.train.timeout-minutes: expected an integer, got 1.5"],
    ),
    (
        "timeout-bool",
        job_with("timeout-minutes: true"),
        ["5:22: jobs.train.timeout-minutes: expected an integer, got true"],
    ),
    (
        "timeout-zero",
        job_with("timeout-minutes: 0"),
        ["5:22: jobs.train.timeout-minutes: must be at least 1, got 0"],
    ),
    (
        "timeout-too-big",
        job_with("timeout-minutes: 5000"),
        ["5:22: jobs.train.timeout-minutes: must be at most 4320, got 5000"],
    ),
    (
        "timeout-huge-number",
        job_with("timeout-minutes: " + "9" * 5000),
        ["5:22: jobs.train.timeout-minutes: expected an integer, got " + "9" * 37 + "..."],
    ),
    (
        "continue-on-error-yes",
        job_with("continue-on-error: yes"),
        ['5:24: jobs.train.continue-on-error: expected true or false, got "yes"'],
    ),
    (
        "continue-on-error-one",
        job_with("continue-on-error: 1"),
        ["5:24: jobs.train.continue-on-error: expected true or false, got 1"],
    ),
    (
        "name-too-long",
        "name: " + "n" * 101 + "\n" + MINIMAL,
        ["1:7: name: is too long: at most 100 characters allowed"],
    ),
    (
        "custom-tag",
        MINIMAL.replace("runs-on: gpu", "runs-on: !gpu big"),
        ["4:14: YAML tag !gpu is not supported"],
    ),
    (
        "nul-escape",
        MINIMAL.replace("python train.py", '"a\\0b"'),
        ["6:14: jobs.train.steps[0].run: must not contain a NUL character"],
    ),
    (
        "complex-key",
        MINIMAL + "? [a, b]\n: c\n",
        ["7:3: mapping keys must be plain strings"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_schema_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


# E1: syntax mistakes are reported where they are, in words that say how to fix them.
RAW_CASES = [
    (
        "tab-indent",
        "on: push\njobs:\n\ttrain: {}\n",
        "3:1: invalid YAML: while scanning for the next token, found character '\\t' that"
        " cannot start any token (indent with spaces: YAML does not allow tabs there)",
    ),
    (
        "tab-after-key",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n\t  steps: []\n",
        "5:1: invalid YAML: while scanning for the next token, found character '\\t' that"
        " cannot start any token (indent with spaces: YAML does not allow tabs there)",
    ),
    (
        "unclosed-single-quote",
        "on: push\njobs:\n  a: {name: 'x}\n",
        "3:13: invalid YAML: this quoted string is never closed",
    ),
    (
        "unclosed-double-quote",
        'on: push\njobs:\n  a:\n    runs-on: "gpu\n    steps: []\n',
        "4:14: invalid YAML: this quoted string is never closed",
    ),
    (
        "unclosed-flow-list",
        "on: [push\njobs: {}\n",
        "2:5: invalid YAML: while parsing a flow sequence at line 1, expected ',' or ']',"
        " but got ':'",
    ),
    (
        "bad-indentation",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n   steps: []\n",
        "5:4: invalid YAML: this line's indentation does not match the lines above it",
    ),
    (
        "over-indented",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n     steps: []\n",
        "5:11: invalid YAML: mapping values are not allowed here (a line indented deeper than"
        " the one above, or ': ' in an unquoted value?)",
    ),
    (
        "two-documents",
        MINIMAL + "---\non: push\n",
        "7:1: invalid YAML: expected a single document in the stream at line 1, but found"
        " another document",
    ),
    (
        "control-char",
        "on: push\x07\n",
        "1:9: invalid YAML: control character U+0007 is not allowed",
    ),
    (
        "raw-ansi-escape",
        'on: push\nenv: {A: "\x1b[31m"}\n',
        "2:11: invalid YAML: control character U+001B is not allowed",
    ),
    ("anchor", "on: push\nx: &a [1]\n", "2:4: anchors and aliases are not supported"),
    ("alias", "on: push\nx: *a\n", "2:4: anchors and aliases are not supported"),
    (
        "merge-key-alias",
        "on: push\nbase: &b {runs-on: x}\njobs: {a: {<<: *b}}\n",
        "2:7: anchors and aliases are not supported",
    ),
    (
        "too-deep",
        "on: " + "[" * 65 + "]" * 65 + "\n",
        "1:68: nesting deeper than 64 levels is not supported",
    ),
    ("list-top-level", "- on: push\n", "1:1: expected a mapping at the top level, got a list"),
    ("scalar-top-level", "push\n", '1:1: expected a mapping at the top level, got "push"'),
    ("empty", "", "1:1: expected a mapping at the top level, got an empty file"),
    ("comment-only", "# nothing\n", "1:1: expected a mapping at the top level, got an empty file"),
    (
        "nul-byte",
        b"on: push\x00\n",
        "1:1: file contains a NUL byte; workflow files must be UTF-8 text",
    ),
    (
        "latin-1",
        "name: caf\xe9\n".encode("latin-1"),
        "1:1: file is not valid UTF-8 (byte 0xe9 at offset 9)",
    ),
    (
        "utf-16",
        MINIMAL.encode("utf-16"),
        "1:1: file contains a NUL byte; workflow files must be UTF-8 text",
    ),
    (
        "lone-surrogate",
        "name: \udc80\n",
        "1:1: file contains characters that cannot be encoded as UTF-8",
    ),
    ("too-large", "#" * (MAX_WORKFLOW_BYTES + 1), "1:1: file is larger than 1048576 bytes"),
    (
        "too-large-utf8",
        "é" * (MAX_WORKFLOW_BYTES // 2 + 1),
        "1:1: file is larger than 1048576 bytes",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in RAW_CASES], ids=[case[0] for case in RAW_CASES]
)
def test_unparseable_files(text: str | bytes, expected: str) -> None:
    assert errors_of(text) == located(expected)


def test_deep_but_allowed_nesting_reaches_the_schema() -> None:
    text = MINIMAL + "extra: " + "[" * 63 + "]" * 63 + "\n"
    assert errors_of(text) == located(
        "7:1: unknown key 'extra' (expected one of: name, on, env, defaults, concurrency, jobs)"
    )


def test_several_errors_are_all_reported_in_file_order() -> None:
    text = (
        "name: ok\n"  # 1
        "on: {push: {branch: [main]}}\n"  # 2
        "jobs:\n"  # 3
        "  train:\n"  # 4
        "    runs-on: gpu\n"  # 5
        "    timeout-minutes: 0\n"  # 6
        "    resources: {gpus: two}\n"  # 7
        "    steps:\n"  # 8
        "      - run: ''\n"  # 9
        "      - run: x\n"  # 10
        "        shel: sh\n"  # 11
        "    metrics: {file: /abs.json}\n"  # 12
        "  eval:\n"  # 13
        "    runs_on: cpu\n"  # 14
        "    steps: [{run: x}]\n"  # 15
    )
    assert errors_of(text) == located(
        "2:13: on.push: unknown key 'branch' (did you mean 'branches'?)",
        "6:22: jobs.train.timeout-minutes: must be at least 1, got 0",
        '7:23: jobs.train.resources.gpus: expected an integer, got "two"',
        "9:14: jobs.train.steps[0].run: must not be empty",
        "11:9: jobs.train.steps[1]: unknown key 'shel' (did you mean 'shell'?)",
        "12:21: jobs.train.metrics.file: must be a relative path under $LABCI_OUTPUT",
        "14:5: jobs.eval: unknown key 'runs_on' (did you mean 'runs-on'?)",
    )


def test_syntax_error_stops_before_the_schema() -> None:
    """A file that is not YAML gets one error, where the parser stopped, nothing invented."""
    text = job_with("timeout-minutes: 0") + "  other: {runs-on: 'x}\n"
    assert errors_of(text) == located("7:20: invalid YAML: this quoted string is never closed")


def test_spec_error_prints_like_a_compiler() -> None:
    assert str(SpecError(PATH, 12, 5, "boom")) == ".labci/train.yml:12:5: boom"


def test_spec_errors_needs_an_error() -> None:
    with pytest.raises(ValueError, match="SpecErrors needs at least one SpecError"):
        SpecErrors([])


def test_a_job_validates_by_its_yaml_spelling_only() -> None:
    """Models take `runs-on`, as written in YAML and dumped for runners; never `runs_on`."""
    job = Job.model_validate({"id": "a", "runs-on": "gpu", "steps": [{"run": "x"}]})
    assert job.runs_on == ["gpu"]
    with pytest.raises(ValueError, match="runs-on\n  Field required") as caught:
        Job.model_validate({"id": "a", "runs_on": ["gpu"], "steps": [{"run": "x"}]})
    assert "runs_on\n  Extra inputs are not permitted" in str(caught.value)
