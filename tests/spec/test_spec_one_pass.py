"""One pass reports every error of a file (issue 11): the cross-field rules (`needs`,
matrix axes, `repeats`, trigger filters, expressions) run beside the schema's errors, on
each part of the file that is right on its own, in file order, and never echo an error
the schema already reports."""

from __future__ import annotations

import pytest
from spec_corpus import ISSUE_FILE, errors_of, job_with, located

INJECTION = (
    "cannot be used here: text a pull request controls, spliced into a shell command, "
    "is a script-injection hole; steps read it from the LABCI_* environment variables "
    "(e.g. $LABCI_BRANCH) instead"
)


def test_the_issue_file_gets_all_four_errors_at_once() -> None:
    assert errors_of(ISSUE_FILE) == located(
        "4:5: jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)",
        "5:13: jobs.train.needs[0]: unknown job 'nope'",
        "8:41: jobs.train.steps[0].run: `matrix.sed`: the matrix has no 'sed'"
        " (did you mean 'seed'?)",
        "9:24: jobs.train.metrics.repeats: 'seeds' is not an axis of the job's matrix (axes: seed)",
    )


EVERY_RULE = """\
on:
  push:
    branches: [main]
    branches-ignore: [wip]
  workflow_dispatch:
    inputs:
      epochs: {type: number}
jobs:
  train:
    runs_on: gpu
    needs: [nope]
    timeout-minutes: 0
    strategy: {matrix: {seed: [0, 1, 2], exclude: [{sed: 1}]}}
    steps:
      - run: python train.py --seed ${{ matrix.sed }} --epochs ${{ inputs.epoch }}
    metrics: {repeats: seeds, alpha: 1}
  eval:
    runs-on: cpu
    needs: [train, eval, report]
    steps: [{run: "echo ${{ github.head_ref }}", shel: sh}]
  report:
    runs-on: cpu
    needs: eval
    steps: [{run: echo}]
    metrics: {repeats: {axis: seed, max: 3}}
"""


def test_schema_errors_and_every_kind_of_rule_error_come_together_in_file_order() -> None:
    assert errors_of(EVERY_RULE) == located(
        "4:5: on.push.branches-ignore: use `branches` or `branches-ignore`, not both"
        " (negate with '!' inside `branches` to exclude)",
        "10:5: jobs.train: unknown key 'runs_on' (did you mean 'runs-on'?)",
        "11:13: jobs.train.needs[0]: unknown job 'nope' (expected one of: eval, report)",
        "12:22: jobs.train.timeout-minutes: must be at least 1, got 0",
        "13:53: jobs.train.strategy.matrix.exclude[0].sed: 'sed' is not an axis of the matrix"
        " (axes: seed)",
        "15:41: jobs.train.steps[0].run: `matrix.sed`: the matrix has no 'sed'"
        " (did you mean 'seed'?)",
        "15:68: jobs.train.steps[0].run: `inputs.epoch`: unknown input 'epoch'"
        " (did you mean 'epochs'?)",
        "16:24: jobs.train.metrics.repeats: 'seeds' is not an axis of the job's matrix"
        " (axes: seed)",
        "16:38: jobs.train.metrics.alpha: must be less than 0.5, got 1",
        "19:5: jobs.eval.needs: dependency cycle: eval → report → eval",
        "19:20: jobs.eval.needs[1]: a job cannot need itself",
        f"20:29: jobs.eval.steps[0].run: `github.head_ref` {INJECTION}",
        "20:50: jobs.eval.steps[0]: unknown key 'shel' (did you mean 'shell'?)",
        "25:31: jobs.report.metrics.repeats.axis: 'seed' is not an axis of the job's matrix"
        " (this job has no `strategy.matrix`)",
    )


# A part whose own error the schema reports is not read by the rules: no second error
# about the same mistake, nor one drawn from a value that means nothing yet.
NO_ECHO_CASES = [
    (
        "needs-item-invalid",
        "on: push\njobs:\n  a: {runs-on: x, needs: [b, ''], steps: [{run: x}]}\n",
        ["3:30: jobs.a.needs[1]: must not be empty"],
    ),
    (
        "matrix-invalid-hides-its-keys",
        job_with(
            "strategy: {matrix: {seed: []}}",
            "metrics: {repeats: seed}",
            "env: {S: '${{ matrix.seed }}', T: '${{ matrix.other }}'}",
        ),
        ["5:31: jobs.train.strategy.matrix.seed: must not be empty"],
    ),
    (
        "repeats-max-invalid-hides-its-axis",
        job_with("strategy: {matrix: {seed: [0]}}", "metrics: {repeats: {axis: seeds, max: 1}}"),
        ["6:43: jobs.train.metrics.repeats.max: must be at least 2, got 1"],
    ),
    (
        "filter-pattern-invalid",
        "on: {push: {branches: [main], branches-ignore: ['!']}}\n"
        "jobs:\n  a: {runs-on: x, steps: [{run: x}]}\n",
        [
            '1:49: on.push.branches-ignore[0]: "!" alone negates nothing; put a pattern after'
            ' it, like "!docs/**"'
        ],
    ),
    (
        "job-not-a-mapping-still-exists",
        "on: push\njobs:\n  a: [oops]\n  b: {runs-on: x, needs: a, steps: [{run: x}]}\n",
        ["3:6: jobs.a: expected a mapping, got a list"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in NO_ECHO_CASES], ids=[c[0] for c in NO_ECHO_CASES]
)
def test_a_part_with_a_schema_error_gets_no_second_error(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


def test_rules_still_read_the_valid_parts_of_an_invalid_section() -> None:
    """`fail-fast: maybe` breaks `strategy`, not its matrix; a declared input whose
    declaration is broken is still declared."""
    text = (
        "on: {workflow_dispatch: {inputs: {epochs: {type: choice}}}}\n"
        "jobs:\n"
        "  train:\n"
        "    runs-on: gpu\n"
        "    strategy: {matrix: {seed: [0, 1]}, fail-fast: maybe}\n"
        "    steps:\n"
        "      - run: train ${{ matrix.sed }} ${{ inputs.epochs }} ${{ inputs.lr }}\n"
    )
    assert errors_of(text) == located(
        "1:43: on.workflow_dispatch.inputs.epochs: a choice input needs a non-empty `options` list",
        '5:51: jobs.train.strategy.fail-fast: expected true or false, got "maybe"',
        "7:24: jobs.train.steps[0].run: `matrix.sed`: the matrix has no 'sed'"
        " (did you mean 'seed'?)",
        "7:63: jobs.train.steps[0].run: `inputs.lr`: unknown input 'lr' (expected one of: epochs)",
    )
