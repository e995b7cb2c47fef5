"""The keys of a job and its steps: `defaults`, `steps`, `strategy`, `metrics`, `artifacts`,
`cache`; for each a valid example, and the located error of its typical mistakes."""

from __future__ import annotations

from typing import Any

import pytest
from spec_corpus import VALID, errors_of, job_with, load, located, step_with

from labci_spec import Artifacts, Cache, Compare, MetricsSpec, Step, Strategy
from labci_spec.model import Defaults


def train(text: str) -> dict[str, Any]:
    """The job `train` of `text`, dumped as it travels (YAML keys)."""
    return load(text).jobs["train"].model_dump(mode="json", by_alias=True)


VALID_CASES: list[tuple[str, str, str, Any]] = [
    # id, workflow, job key, its value once loaded (as a model, compared dumped)
    (
        "defaults",
        job_with("defaults: {run: {shell: 'python3 -u {0}', working-directory: src/train}}"),
        "defaults",
        Defaults.model_validate(
            {"run": {"shell": "python3 -u {0}", "working-directory": "src/train"}}
        ),
    ),
    (
        "step-everything",
        VALID["step-everything"],
        "steps",
        [
            Step.model_validate(
                {
                    "run": "x",
                    "name": "fit",
                    "if": "always()",
                    "env": {"A": "1", "B": "two"},
                    "shell": "python3 -u {0}",
                    "working-directory": "sub/dir",
                    "timeout-minutes": 5,
                    "continue-on-error": True,
                }
            )
        ],
    ),
    ("step-block", VALID["step-block"], "steps", [Step(run="echo one\necho two\n")]),
    ("step-folded", VALID["step-folded"], "steps", [Step(run="python train.py --fast")]),
    (
        "strategy",
        VALID["strategy-options"],
        "strategy",
        Strategy.model_validate(
            {"matrix": {"seed": [1, 2]}, "fail-fast": False, "max-parallel": 1}
        ),
    ),
    (
        "metrics-file",
        VALID["metrics-file"],
        "metrics",
        MetricsSpec.model_validate({"file": "out/metrics.json"}),
    ),
    (
        "metrics-files",
        VALID["metrics-files-list"],
        "metrics",
        MetricsSpec.model_validate({"files": ["a.json", "b.yml", "c.csv"]}),
    ),
    (
        "metrics-compare",
        VALID["metrics-tolerances"],
        "metrics",
        MetricsSpec(
            compare={
                "a": Compare.model_validate({"goal": "max", "tolerance": 0}),
                "b": Compare.model_validate({"goal": "min", "tolerance": "1.5%"}),
                "c": Compare.model_validate({"goal": "max", "tolerance": 10}),
                "d.e/f-g_h": Compare.model_validate({"goal": "min", "gate": False}),
            }
        ),
    ),
    (
        "artifacts-list",
        VALID["artifacts-list"],
        "artifacts",
        Artifacts.model_validate({"paths": ["ckpt/*.pt", "logs/**"]}),
    ),
    (
        "artifacts-string",
        VALID["artifacts-string"],
        "artifacts",
        Artifacts.model_validate("model.onnx"),
    ),
    (
        "artifacts-mapping",
        VALID["artifacts-mapping"],
        "artifacts",
        Artifacts.model_validate({"paths": ["plots"], "max-size": 100 * 2**20}),
    ),
    (
        "cache",
        VALID["cache-key"],
        "cache",
        Cache.model_validate(
            {"paths": ["data"], "key": "v1-${{ hashFiles('req.txt') }}-${{ env.X }}"}
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [case[1:] for case in VALID_CASES],
    ids=[case[0] for case in VALID_CASES],
)
def test_valid_job_keys(text: str, key: str, expected: Any) -> None:
    assert train(text)[key] == as_sent(expected)


def as_sent(value: Any) -> Any:
    """A model (or list of models) as `train` dumps it."""
    if isinstance(value, list):
        return [as_sent(item) for item in value]
    return value.model_dump(mode="json", by_alias=True)


def test_compare_defaults_gate_and_exact_tolerance() -> None:
    metrics = load(VALID["metrics-lines-only"]).jobs["train"].metrics
    assert metrics is not None
    assert metrics.paths == []
    assert metrics.baseline == "auto"
    accuracy = metrics.compare["accuracy"]
    assert (accuracy.goal, accuracy.gate, accuracy.tolerance.allowed(0.9)) == ("max", True, 0.0)


def test_baseline_existing_turns_off_measuring_the_base() -> None:
    metrics = load(job_with("metrics: {baseline: existing}")).jobs["train"].metrics
    assert metrics is not None
    assert metrics.baseline == "existing"


UNIT = "(use bash, sh, python, or a command with {0})"
ERROR_CASES = [
    (
        "shell-unknown",
        job_with("defaults: {run: {shell: zsh}}"),
        [f"5:29: jobs.train.defaults.run.shell: unknown shell 'zsh' {UNIT}"],
    ),
    (
        "step-shell-unknown",
        step_with("shell: fish"),
        [f"7:16: jobs.train.steps[0].shell: unknown shell 'fish' {UNIT}"],
    ),
    (
        "workflow-shell-unknown",
        "defaults: {run: {shell: cmd}}\non: push\njobs: {a: {runs-on: x, steps: [{run: x}]}}\n",
        [f"1:25: defaults.run.shell: unknown shell 'cmd' {UNIT}"],
    ),
    (
        "working-directory-absolute",
        job_with("defaults: {run: {working-directory: /etc}}"),
        ["5:41: jobs.train.defaults.run.working-directory: must be a relative path"],
    ),
    (
        "working-directory-dotdot",
        step_with("working-directory: ../x"),
        ["7:28: jobs.train.steps[0].working-directory: must not contain '..'"],
    ),
    (
        "working-directory-home",
        step_with("working-directory: ~/x"),
        ["7:28: jobs.train.steps[0].working-directory: must be a relative path"],
    ),
    (
        "working-directory-empty",
        step_with("working-directory: ''"),
        ["7:28: jobs.train.steps[0].working-directory: must not be empty"],
    ),
    (
        "defaults-typo",
        job_with("defaults: {run: {workdir: x}}"),
        [
            "5:22: jobs.train.defaults.run: unknown key 'workdir' (expected one of: shell, working-directory)"
        ],
    ),
    (
        "defaults-without-run",
        job_with("defaults: {shell: sh}"),
        ["5:16: jobs.train.defaults: unknown key 'shell' (expected one of: run)"],
    ),
    (
        "step-timeout-zero",
        step_with("timeout-minutes: 0"),
        ["7:26: jobs.train.steps[0].timeout-minutes: must be at least 1, got 0"],
    ),
    (
        "step-continue-on-error-text",
        step_with("continue-on-error: 'false'"),
        ['7:28: jobs.train.steps[0].continue-on-error: expected true or false, got "false"'],
    ),
    (
        "step-if-list",
        step_with("if: [a]"),
        ["7:13: jobs.train.steps[0].if: expected a string, got a list"],
    ),
    (
        "step-env-list",
        step_with("env: [A=1]"),
        ["7:14: jobs.train.steps[0].env: expected a mapping, got a list"],
    ),
    (
        "step-env-name",
        step_with("env: {1A: x}"),
        [
            "7:15: jobs.train.steps[0].env: invalid variable name '1A' (use letters, digits and '_', not starting with a digit)"
        ],
    ),
    (
        "step-name-empty",
        step_with("name: ''"),
        ["7:15: jobs.train.steps[0].name: must not be empty"],
    ),
    (
        "steps-1001",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n" + "      - run: x\n" * 1001,
        ["6:7: jobs.train.steps: is too long: at most 1000 items allowed"],
    ),
    (
        "strategy-without-matrix",
        job_with("strategy: {fail-fast: false}"),
        ["5:5: jobs.train.strategy: missing required key 'matrix'"],
    ),
    (
        "matrix-empty",
        job_with("strategy: {matrix: {}}"),
        ["5:24: jobs.train.strategy.matrix: a matrix needs at least one axis or `include` entry"],
    ),
    (
        "matrix-axis-empty",
        job_with("strategy: {matrix: {a: []}}"),
        ["5:28: jobs.train.strategy.matrix.a: must not be empty"],
    ),
    (
        "matrix-axis-scalar",
        job_with("strategy: {matrix: {a: 1}}"),
        ["5:28: jobs.train.strategy.matrix.a: expected a list, got 1"],
    ),
    (
        "matrix-axis-name",
        job_with("strategy: {matrix: {'1a': [1]}}"),
        [
            "5:25: jobs.train.strategy.matrix: invalid axis name '1a' (use letters, digits, '_' and '-', starting with a letter or '_')"
        ],
    ),
    (
        "matrix-include-scalar",
        job_with("strategy: {matrix: {a: [1], include: [1]}}"),
        ["5:43: jobs.train.strategy.matrix.include[0]: expected a mapping, got 1"],
    ),
    (
        "matrix-include-mapping",
        job_with("strategy: {matrix: {a: [1], include: {a: 1}}}"),
        ["5:42: jobs.train.strategy.matrix.include: expected a list, got a mapping"],
    ),
    (
        "matrix-from-an-expression",
        job_with("strategy: {matrix: '${{ fromJSON(x) }}'}"),
        [
            '5:24: jobs.train.strategy.matrix: expected a mapping, got "${{ fromJSON(x) }}"',
            "5:25: jobs.train.strategy.matrix: expressions (${{ }}) are not supported in this field",
        ],
    ),
    (
        "max-parallel-zero",
        job_with("strategy: {matrix: {a: [1]}, max-parallel: 0}"),
        ["5:48: jobs.train.strategy.max-parallel: must be at least 1, got 0"],
    ),
    (
        "fail-fast-no",
        job_with("strategy: {matrix: {a: [1]}, fail-fast: no}"),
        ['5:45: jobs.train.strategy.fail-fast: expected true or false, got "no"'],
    ),
    (
        "metrics-file-and-files",
        job_with("metrics: {file: a.json, files: [b.json]}"),
        ["5:14: jobs.train.metrics: use `file` or `files`, not both"],
    ),
    (
        "metrics-suffix",
        job_with("metrics: {file: a.txt}"),
        [
            "5:21: jobs.train.metrics.file: must end in .json, .yaml, .yml, .csv (the format is read from the suffix)"
        ],
    ),
    (
        "metrics-directory",
        job_with("metrics: {file: out/}"),
        ["5:21: jobs.train.metrics.file: must name a file"],
    ),
    (
        "metrics-absolute",
        job_with("metrics: {file: /tmp/m.json}"),
        ["5:21: jobs.train.metrics.file: must be a relative path under $LABCI_OUTPUT"],
    ),
    (
        "metrics-dotdot",
        job_with("metrics: {file: out/../../m.json}"),
        ["5:21: jobs.train.metrics.file: must not contain '..'"],
    ),
    (
        "metrics-files-empty",
        job_with("metrics: {files: []}"),
        ["5:22: jobs.train.metrics.files: must not be empty"],
    ),
    (
        "metrics-typo",
        job_with("metrics: {fiel: a.json}"),
        ["5:15: jobs.train.metrics: unknown key 'fiel' (did you mean 'file'?)"],
    ),
    (
        "baseline-word",
        job_with("metrics: {baseline: never}"),
        ["5:25: jobs.train.metrics.baseline: expected 'auto' or 'existing', got \"never\""],
    ),
    (
        "compare-list",
        job_with("metrics: {compare: [acc]}"),
        ["5:24: jobs.train.metrics.compare: expected a mapping, got a list"],
    ),
    (
        "compare-metric-name",
        job_with("metrics: {compare: {'a b': {goal: max}}}"),
        [
            "5:25: jobs.train.metrics.compare: invalid metric name 'a b' (use letters, digits, '_', '-', '.' and '/')"
        ],
    ),
    (
        "compare-goal",
        job_with("metrics: {compare: {acc: {goal: maximize}}}"),
        ["5:37: jobs.train.metrics.compare.acc.goal: expected 'max' or 'min', got \"maximize\""],
    ),
    (
        "compare-without-goal",
        job_with("metrics: {compare: {acc: {tolerance: 1}}}"),
        ["5:25: jobs.train.metrics.compare.acc: missing required key 'goal'"],
    ),
    (
        "tolerance-word",
        job_with("metrics: {compare: {acc: {goal: max, tolerance: two}}}"),
        [
            "5:53: jobs.train.metrics.compare.acc.tolerance: expected a number such as 0.005 or a percentage such as 2%, got 'two'"
        ],
    ),
    (
        "tolerance-negative",
        job_with("metrics: {compare: {acc: {goal: max, tolerance: -1}}}"),
        ["5:53: jobs.train.metrics.compare.acc.tolerance: must be at least 0.0, got -1"],
    ),
    (
        "tolerance-negative-percent",
        job_with("metrics: {compare: {acc: {goal: max, tolerance: -2%}}}"),
        ['5:53: jobs.train.metrics.compare.acc.tolerance: must be at least 0.0, got "-2%"'],
    ),
    (
        "tolerance-bool",
        job_with("metrics: {compare: {acc: {goal: max, tolerance: true}}}"),
        [
            "5:53: jobs.train.metrics.compare.acc.tolerance: expected a number such as 0.005 or a percentage such as 2%"
        ],
    ),
    (
        "tolerance-infinite",
        job_with("metrics: {compare: {acc: {goal: max, tolerance: 1e999}}}"),
        ["5:53: jobs.train.metrics.compare.acc.tolerance: expected a finite number, got 1e999"],
    ),
    (
        "gate-word",
        job_with("metrics: {compare: {acc: {goal: max, gate: maybe}}}"),
        ['5:48: jobs.train.metrics.compare.acc.gate: expected true or false, got "maybe"'],
    ),
    (
        "artifacts-absolute",
        job_with("artifacts: [/etc/passwd]"),
        ["5:17: jobs.train.artifacts[0]: must be a relative path"],
    ),
    (
        "artifacts-dotdot",
        job_with("artifacts: {paths: ['../x']}"),
        ["5:25: jobs.train.artifacts.paths[0]: must not contain '..'"],
    ),
    (
        "artifacts-size",
        job_with("artifacts: {paths: [a], max-size: big}"),
        [
            "5:39: jobs.train.artifacts.max-size: expected a size such as 16G, 512M or a number of bytes, got 'big'"
        ],
    ),
    (
        "artifacts-empty",
        job_with("artifacts: []"),
        ["5:16: jobs.train.artifacts: must not be empty"],
    ),
    (
        "artifacts-without-paths",
        job_with("artifacts: {max-size: 1G}"),
        ["5:5: jobs.train.artifacts: missing required key 'paths'"],
    ),
    (
        "cache-without-key",
        job_with("cache: {paths: [data]}"),
        ["5:5: jobs.train.cache: missing required key 'key'"],
    ),
    (
        "cache-empty-key",
        job_with("cache: {paths: [data], key: ''}"),
        ["5:33: jobs.train.cache.key: must not be empty"],
    ),
    (
        "cache-absolute",
        job_with("cache: {paths: [/data], key: k}"),
        ["5:21: jobs.train.cache.paths[0]: must be a relative path"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in ERROR_CASES], ids=[case[0] for case in ERROR_CASES]
)
def test_job_key_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)
