"""Rules across fields (labci_spec.rules): `needs`, matrix axes and caps, trigger filters,
and which `${{ }}` contexts each field may use (D6, D7), every error exact and located."""

from __future__ import annotations

from typing import Any

import pytest
from spec_corpus import (
    ENV_HOSTILE,
    HOSTILE_VALUES,
    MINIMAL,
    errors_of,
    job_with,
    load,
    located,
    on_with,
    step_with,
)

from labci_spec import EvalContext, expand_job, render

INJECTION = (
    "cannot be used here: text a pull request controls, spliced into a shell command, "
    "is a script-injection hole; steps read it from the LABCI_* environment variables "
    "(e.g. $LABCI_BRANCH) instead"
)
CONDITION_FIELDS = (
    "this field can read github.event_name, github.ref_name, github.base_ref, github.head_ref,"
    " github.sha"
)


def two_jobs(a_extra: str = "", b_extra: str = "") -> str:
    return (
        "on: push\njobs:\n"
        f"  a: {{runs-on: x, steps: [{{run: x}}]{a_extra}}}\n"
        f"  b: {{runs-on: x, steps: [{{run: x}}]{b_extra}}}\n"
    )


def run_line(command: str) -> str:
    """MINIMAL whose step runs `command` (written as YAML, quotes included)."""
    return MINIMAL.replace("python train.py", command)


def run_block(*lines: str) -> str:
    """A workflow whose step is a `run: |` block scalar of `lines` (the first on line 7)."""
    body = "".join(f"          {line}\n" for line in lines)
    return "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run: |\n" + body


NEEDS_CASES = [
    (
        "unknown-job-hint",
        two_jobs(b_extra=", needs: [aa]"),
        ["4:46: jobs.b.needs[0]: unknown job 'aa' (did you mean 'a'?)"],
    ),
    (
        "unknown-job-list",
        two_jobs(b_extra=", needs: [zzz]"),
        ["4:46: jobs.b.needs[0]: unknown job 'zzz' (expected one of: a)"],
    ),
    (
        "needs-itself",
        two_jobs(a_extra=", needs: a"),
        ["3:45: jobs.a.needs: a job cannot need itself"],
    ),
    (
        "cycle-of-two",
        two_jobs(a_extra=", needs: b", b_extra=", needs: a"),
        ["3:38: jobs.a.needs: dependency cycle: a → b → a"],
    ),
    (
        "cycle-of-three",
        "on: push\njobs:\n  a: {runs-on: x, needs: c, steps: [{run: x}]}\n"
        "  b: {runs-on: x, needs: a, steps: [{run: x}]}\n"
        "  c: {runs-on: x, needs: [b], steps: [{run: x}]}\n",
        ["3:19: jobs.a.needs: dependency cycle: a → c → b → a"],
    ),
    (
        "cycle-and-unknown-both-reported",
        "on: push\njobs:\n  a: {runs-on: x, needs: [b, q], steps: [{run: x}]}\n"
        "  b: {runs-on: x, needs: a, steps: [{run: x}]}\n",
        [
            "3:19: jobs.a.needs: dependency cycle: a → b → a",
            "3:30: jobs.a.needs[1]: unknown job 'q' (expected one of: b)",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in NEEDS_CASES], ids=[case[0] for case in NEEDS_CASES]
)
def test_needs_errors(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


def test_needs_form_a_dag() -> None:
    workflow = load(VALID_NEEDS)
    assert {job_id: job.needs for job_id, job in workflow.jobs.items()} == {
        "a": [],
        "b": ["a"],
        "c": ["a", "b"],
    }


VALID_NEEDS = (
    "on: push\njobs:\n  a: {runs-on: x, steps: [{run: x}]}\n"
    "  b: {runs-on: x, needs: a, steps: [{run: x}]}\n"
    "  c: {runs-on: x, needs: [a, b], steps: [{run: x}]}\n"
)

MATRIX_AND_TRIGGER_CASES = [
    (
        "exclude-names-no-axis",
        job_with("strategy: {matrix: {a: [1, 2], exclude: [{b: 1}]}}"),
        [
            "5:47: jobs.train.strategy.matrix.exclude[0].b: 'b' is not an axis of the matrix (axes: a)"
        ],
    ),
    (
        "exclude-in-include-only-matrix",
        job_with("strategy: {matrix: {include: [{a: 1}], exclude: [{a: 1}]}}"),
        [
            "5:55: jobs.train.strategy.matrix.exclude[0].a: 'a' is not an axis of the matrix"
            " (axes: none)"
        ],
    ),
    (
        "repeats-without-matrix",
        job_with("metrics: {repeats: seed}"),
        [
            "5:24: jobs.train.metrics.repeats: 'seed' is not an axis of the job's matrix"
            " (this job has no `strategy.matrix`)"
        ],
    ),
    (
        "repeats-names-an-include-key",
        job_with(
            "strategy: {matrix: {seed: [1, 2], include: [{lr: 1}]}}", "metrics: {repeats: lr}"
        ),
        ["6:24: jobs.train.metrics.repeats: 'lr' is not an axis of the job's matrix (axes: seed)"],
    ),
    (
        "matrix-257",
        job_with("strategy: {matrix: {a: [" + ", ".join(map(str, range(257))) + "]}}"),
        ["5:16: jobs.train.strategy.matrix: matrix has 257 combinations; the limit is 256"],
    ),
    (
        "include-pushes-over-256",
        job_with(
            "strategy: {matrix: {a: [" + ", ".join(map(str, range(256))) + "], include: [{a: x}]}}"
        ),
        ["5:16: jobs.train.strategy.matrix: matrix has 257 combinations; the limit is 256"],
    ),
    (
        "branches-and-branches-ignore",
        on_with("{push: {branches: [a], branches-ignore: [b]}}"),
        [
            "1:28: on.push.branches-ignore: use `branches` or `branches-ignore`, not both"
            " (negate with '!' inside `branches` to exclude)"
        ],
    ),
    (
        "paths-and-paths-ignore",
        on_with("{pull_request: {paths: [a], paths-ignore: [b]}}"),
        [
            "1:33: on.pull_request.paths-ignore: use `paths` or `paths-ignore`, not both"
            " (negate with '!' inside `paths` to exclude)"
        ],
    ),
    (
        "negation-in-branches-ignore",
        on_with("{push: {branches-ignore: [a, '!b']}}"),
        [
            "1:34: on.push.branches-ignore[1]: '!' has no meaning in `branches-ignore`; use"
            " `branches` with '!' patterns to include and exclude"
        ],
    ),
    (
        "negation-in-paths-ignore",
        on_with("{push: {paths-ignore: ['!b']}}"),
        [
            "1:28: on.push.paths-ignore[0]: '!' has no meaning in `paths-ignore`; use `paths`"
            " with '!' patterns to include and exclude"
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in MATRIX_AND_TRIGGER_CASES],
    ids=[case[0] for case in MATRIX_AND_TRIGGER_CASES],
)
def test_matrix_and_trigger_rules(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


def test_excludes_may_bring_a_large_product_under_the_cap() -> None:
    values = ", ".join(map(str, range(20)))
    excludes = ", ".join(f"{{a: {i}}}" for i in range(8))
    text = job_with(
        f"strategy: {{matrix: {{a: [{values}], b: [{values}], exclude: [{excludes}]}}}}"
    )
    assert len(expand_job(load(text), "train")) == 12 * 20


# D7: in `run:`, `env:` and the other shell-bound fields only matrix, inputs, env and
# secrets expand. Anything from `github` is refused at the expression's own line.
INJECTION_CASES = [
    (
        "pr-title",
        run_line("'echo \"${{ github.event.pull_request.title }}\"'"),
        [f"6:25: jobs.train.steps[0].run: `github.event.pull_request.title` {INJECTION}"],
    ),
    (
        "pr-body",
        run_line("'echo ${{ github.event.pull_request.body }}'"),
        [f"6:24: jobs.train.steps[0].run: `github.event.pull_request.body` {INJECTION}"],
    ),
    (
        "head-ref",
        run_line("'git checkout ${{ github.head_ref }}'"),
        [f"6:32: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "pr-head-ref",
        run_line("'echo ${{ github.event.pull_request.head.ref }}'"),
        [f"6:24: jobs.train.steps[0].run: `github.event.pull_request.head.ref` {INJECTION}"],
    ),
    (
        "commit-message",
        run_line("'echo ${{ github.event.head_commit.message }}'"),
        [f"6:24: jobs.train.steps[0].run: `github.event.head_commit.message` {INJECTION}"],
    ),
    (
        "even-the-sha",
        run_line("'echo ${{ github.sha }}'"),
        [f"6:24: jobs.train.steps[0].run: `github.sha` {INJECTION}"],
    ),
    (
        "context-name-any-case",
        run_line("'echo ${{ GitHub.head_ref }}'"),
        [f"6:24: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "index-syntax",
        run_line("\"echo ${{ github['head_ref'] }}\""),
        [f"6:24: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "whole-context-as-json",
        run_line("'echo ${{ toJSON(github) }}'"),
        [f"6:31: jobs.train.steps[0].run: `github` {INJECTION}"],
    ),
    (
        "inside-format",
        run_line("\"echo ${{ format('{0}', github.head_ref) }}\""),
        [f"6:38: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "block-scalar-2nd-line",
        run_block("echo start", "echo ${{ github.head_ref }}"),
        [f"8:20: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "block-scalar-two-on-one-line",
        run_block(
            "echo start", "echo ok", 'echo "${{ github.event.issue.body }}" ${{ github.actor }}'
        ),
        [
            f"9:21: jobs.train.steps[0].run: `github.event.issue.body` {INJECTION}",
            f"9:53: jobs.train.steps[0].run: `github.actor` {INJECTION}",
        ],
    ),
    (
        "folded-scalar",
        "on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run: >\n"
        "          echo a\n          ${{ github.head_ref }}\n",
        [f"8:15: jobs.train.steps[0].run: `github.head_ref` {INJECTION}"],
    ),
    (
        "workflow-env",
        "on: push\nenv:\n  T: ${{ github.event.pull_request.title }}\njobs:\n"
        "  a: {runs-on: x, steps: [{run: x}]}\n",
        [f"3:10: env.T: `github.event.pull_request.title` {INJECTION}"],
    ),
    (
        "job-env",
        job_with("env: {B: '${{ github.head_ref }}'}"),
        [f"5:19: jobs.train.env.B: `github.head_ref` {INJECTION}"],
    ),
    (
        "step-env",
        step_with("env:", "  B: ${{ github.head_ref }}"),
        [f"8:18: jobs.train.steps[0].env.B: `github.head_ref` {INJECTION}"],
    ),
    (
        "step-name",
        step_with("name: 'test ${{ github.head_ref }}'"),
        [f"7:25: jobs.train.steps[0].name: `github.head_ref` {INJECTION}"],
    ),
    (
        "working-directory",
        step_with("working-directory: '${{ github.head_ref }}'"),
        [f"7:33: jobs.train.steps[0].working-directory: `github.head_ref` {INJECTION}"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in INJECTION_CASES],
    ids=[case[0] for case in INJECTION_CASES],
)
def test_github_context_is_refused_where_it_would_reach_a_shell(
    text: str, expected: list[str]
) -> None:
    assert errors_of(text) == located(*expected)


def test_an_injection_is_reported_alongside_schema_errors() -> None:
    text = job_with("timeout-minutes: 0").replace(
        "{run: x}", "{run: 'echo ${{ github.head_ref }}'}"
    )
    assert errors_of(text) == located(
        "5:22: jobs.train.timeout-minutes: must be at least 1, got 0",
        f"6:29: jobs.train.steps[0].run: `github.head_ref` {INJECTION}",
    )


CONTEXT_CASES = [
    (
        "runs-on-github",
        MINIMAL.replace("runs-on: gpu", "runs-on: '${{ github.head_ref }}'"),
        [
            "4:19: jobs.train.runs-on: `github.head_ref`: context 'github' is not available here"
            " (use matrix, inputs)"
        ],
    ),
    (
        "container-image-github",
        job_with("container: 'img:${{ github.sha }}'"),
        [
            "5:25: jobs.train.container: `github.sha`: context 'github' is not available here"
            " (use matrix, inputs)"
        ],
    ),
    (
        "cache-key-github",
        job_with("cache: {paths: [d], key: '${{ github.sha }}'}"),
        [
            "5:35: jobs.train.cache.key: `github.sha`: context 'github' is not available here"
            " (use matrix, inputs, env)"
        ],
    ),
    (
        "env-value-reads-env",
        "on: push\nenv: {A: '1', B: '${{ env.A }}'}\njobs:\n  a: {runs-on: x, steps: [{run: x}]}\n",
        ["2:23: env.B: `env.A`: context 'env' is not available here (use matrix, inputs, secrets)"],
    ),
    (
        "if-pr-title",
        job_with("if: contains(github.event.pull_request.title, 'wip')"),
        [
            f"5:18: jobs.train.if: `github.event.pull_request.title` is not available; {CONDITION_FIELDS}"
        ],
    ),
    (
        "if-actor",
        job_with("if: ${{ github.actor == 'me' }}"),
        [f"5:13: jobs.train.if: `github.actor` is not available; {CONDITION_FIELDS}"],
    ),
    (
        "if-ref",
        job_with("if: github.ref == 'refs/heads/main'"),
        [f"5:9: jobs.train.if: `github.ref` is not available; {CONDITION_FIELDS}"],
    ),
    (
        "step-if-pr-title",
        step_with("if: github.event.pull_request.title != ''"),
        [
            "7:13: jobs.train.steps[0].if: `github.event.pull_request.title` is not available;"
            f" {CONDITION_FIELDS}"
        ],
    ),
    (
        "if-secrets",
        job_with("if: secrets.X == 'a'"),
        [
            "5:9: jobs.train.if: `secrets.X`: context 'secrets' is not available here"
            " (use matrix, inputs, env, github)"
        ],
    ),
    (
        "if-steps",
        job_with("if: steps.a.outcome == 'success'"),
        [
            "5:9: jobs.train.if: `steps.a.outcome`: context 'steps' is not available here"
            " (use matrix, inputs, env, github)"
        ],
    ),
    (
        "runs-on-secrets",
        MINIMAL.replace("runs-on: gpu", "runs-on: '${{ secrets.LABEL }}'"),
        [
            "4:19: jobs.train.runs-on: `secrets.LABEL`: context 'secrets' is not available here"
            " (use matrix, inputs)"
        ],
    ),
    (
        "job-name-env",
        job_with("name: '${{ env.X }}'"),
        [
            "5:16: jobs.train.name: `env.X`: context 'env' is not available here (use matrix, inputs)"
        ],
    ),
    (
        "cache-key-secrets",
        job_with("cache: {paths: [d], key: '${{ secrets.A }}'}"),
        [
            "5:35: jobs.train.cache.key: `secrets.A`: context 'secrets' is not available here"
            " (use matrix, inputs, env)"
        ],
    ),
    (
        "run-steps-context",
        run_line("'echo ${{ steps.a.outputs.b }}'"),
        [
            "6:24: jobs.train.steps[0].run: `steps.a.outputs.b`: context 'steps' is not"
            " available here (use matrix, inputs, env, secrets)"
        ],
    ),
    (
        "run-runner-context",
        run_line("'echo ${{ runner.os }}'"),
        [
            "6:24: jobs.train.steps[0].run: `runner.os`: context 'runner' is not available"
            " here (use matrix, inputs, env, secrets)"
        ],
    ),
    (
        "run-status-function",
        run_line("'echo ${{ success() }}'"),
        ["6:24: jobs.train.steps[0].run: success() cannot be used here"],
    ),
    (
        "run-hashfiles",
        run_line("\"echo ${{ hashFiles('a') }}\""),
        ["6:24: jobs.train.steps[0].run: hashFiles() cannot be used here"],
    ),
    (
        "if-hashfiles",
        job_with("if: hashFiles('a') != ''"),
        ["5:9: jobs.train.if: hashFiles() cannot be used here"],
    ),
    (
        "matrix-without-matrix",
        run_line("'echo ${{ matrix.seed }}'"),
        ["6:24: jobs.train.steps[0].run: `matrix.seed`: this job has no `strategy.matrix`"],
    ),
    (
        "matrix-typo",
        job_with("strategy: {matrix: {seed: [1]}}").replace(
            "{run: x}", "{run: 'echo ${{ matrix.sed }}'}"
        ),
        [
            "6:29: jobs.train.steps[0].run: `matrix.sed`: the matrix has no 'sed' (did you mean 'seed'?)"
        ],
    ),
    (
        "inputs-without-dispatch",
        run_line("'echo ${{ inputs.lr }}'"),
        [
            "6:24: jobs.train.steps[0].run: `inputs.lr`: inputs exist only for"
            " `workflow_dispatch` runs, and this workflow declares none"
        ],
    ),
    (
        "inputs-typo",
        run_line("'echo ${{ inputs.lrr }}'").replace(
            "on: push", "on: {workflow_dispatch: {inputs: {lr: {}}}}"
        ),
        ["6:24: jobs.train.steps[0].run: `inputs.lrr`: unknown input 'lrr' (did you mean 'lr'?)"],
    ),
    (
        "bad-expression",
        run_line("'echo ${{ matrix. }}'"),
        [
            "6:32: jobs.train.steps[0].run: invalid expression: expected a property name after"
            " '.', found the end of the expression"
        ],
    ),
    (
        "unclosed-expression",
        run_line("'echo ${{ matrix.a'"),
        [
            "6:20: jobs.train.steps[0].run: invalid expression: '${{' is never closed by '}}'"
            " (is a quote left open?)"
        ],
    ),
    (
        "nested-expression",
        run_line("'echo ${{ ${{ }} }}'"),
        [
            "6:24: jobs.train.steps[0].run: invalid expression: unexpected '$'; an expression"
            " cannot contain another '${{ }}'"
        ],
    ),
    (
        "if-incomplete",
        job_with("if: a =="),
        [
            "5:9: jobs.train.if: invalid expression: expected a value, found the end of the expression"
        ],
    ),
    (
        "if-half-wrapped",
        job_with("if: ${{ false }} && always()"),
        [
            "5:9: jobs.train.if: invalid expression: unexpected '$'; an expression cannot"
            " contain another '${{ }}'"
        ],
    ),
    (
        "workflow-name",
        "name: '${{ matrix.a }}'\n" + MINIMAL,
        ["1:8: name: expressions (${{ }}) are not supported in this field"],
    ),
    (
        "artifacts",
        job_with("artifacts: ['${{ matrix.a }}/x']"),
        ["5:18: jobs.train.artifacts[0]: expressions (${{ }}) are not supported in this field"],
    ),
    (
        "branches",
        on_with("{push: {branches: ['${{ github.ref }}']}}"),
        ["1:25: on.push.branches[0]: expressions (${{ }}) are not supported in this field"],
    ),
    (
        "timeout-is-a-number-not-an-expression",
        job_with("timeout-minutes: '${{ inputs.t }}'"),
        [
            '5:22: jobs.train.timeout-minutes: expected an integer, got "${{ inputs.t }}"',
            "5:23: jobs.train.timeout-minutes: expressions (${{ }}) are not supported in this field",
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in CONTEXT_CASES],
    ids=[case[0] for case in CONTEXT_CASES],
)
def test_each_field_allows_only_its_contexts(text: str, expected: list[str]) -> None:
    assert errors_of(text) == located(*expected)


ALLOWED_CASES: list[tuple[str, str, tuple[str | int, ...], str]] = [
    # id, workflow, where in job `train` (as dumped), the text kept there for later
    (
        "if-github-fields",
        job_with(
            "if: github.event_name == 'push' && github.ref_name == 'main' &&"
            " github.base_ref == '' && github.head_ref == '' && github.sha != ''"
        ),
        ("if",),
        "github.event_name == 'push' && github.ref_name == 'main' && github.base_ref == ''"
        " && github.head_ref == '' && github.sha != ''",
    ),
    (
        "step-if-status-and-github",
        step_with("if: failure() && github.base_ref == 'main'"),
        ("steps", 0, "if"),
        "failure() && github.base_ref == 'main'",
    ),
    (
        "run-matrix-env-secrets",
        run_line("'echo ${{ matrix.seed }} ${{ env.A }} ${{ secrets.T }}'").replace(
            "runs-on: gpu", "runs-on: gpu\n    strategy: {matrix: {seed: [1]}}"
        ),
        ("steps", 0, "run"),
        "echo ${{ matrix.seed }} ${{ env.A }} ${{ secrets.T }}",
    ),
    (
        "run-include-only-key",
        job_with("strategy: {matrix: {seed: [1], include: [{lr: 1}]}}").replace(
            "{run: x}", "{run: 'echo ${{ matrix.lr }}'}"
        ),
        ("steps", 0, "run"),
        "echo ${{ matrix.lr }}",
    ),
    (
        "cache-key-hashfiles-env",
        job_with("cache: {paths: [d], key: \"${{ hashFiles('a') }}-${{ env.A }}\"}"),
        ("cache", "key"),
        "${{ hashFiles('a') }}-${{ env.A }}",
    ),
    (
        "literal-dollar-braces",
        run_line("'echo ${HOME} $((1+2)) {{ not an expression }}'"),
        ("steps", 0, "run"),
        "echo ${HOME} $((1+2)) {{ not an expression }}",
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "kept"),
    [case[1:] for case in ALLOWED_CASES],
    ids=[case[0] for case in ALLOWED_CASES],
)
def test_allowed_contexts_load_and_wait_for_the_runner(
    text: str, where: tuple[str | int, ...], kept: str
) -> None:
    value: Any = load(text).jobs["train"].model_dump(mode="json", by_alias=True)
    for part in where:
        value = value[part]
    assert value == kept


# D6, as far as the format goes: text that would be dangerous in a shell is data.
def test_hostile_env_values_are_kept_verbatim() -> None:
    workflow = load(ENV_HOSTILE)
    expected = {f"V{index}": value for index, value in enumerate(HOSTILE_VALUES)}
    assert workflow.env == expected
    (instance,) = expand_job(workflow, "train")
    assert instance.job.env == expected
    assert instance.job.steps[0].run == 'echo "$V0" "$V1"'


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_values_render_as_plain_text(value: str) -> None:
    """Rendering `${{ matrix.x }}` or `${{ env.X }}` substitutes text; nothing evaluates it."""
    ctx = EvalContext(contexts={"matrix": {"x": value}, "env": {"X": value}})
    assert render("[${{ matrix.x }}|${{ env.X }}]", ctx) == f"[{value}|{value}]"


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_matrix_values_stay_data_in_plan_time_fields(value: str) -> None:
    axis = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\x1b", "\\e")
    )
    text = job_with(
        'name: "run ${{ matrix.x }}"',
        "env: {X: '${{ matrix.x }}'}",
        f'strategy: {{matrix: {{x: ["{axis}"]}}}}',
    )
    (instance,) = expand_job(load(text), "train")
    assert (instance.job.name, instance.job.env, instance.matrix) == (
        f"run {value}",
        {"X": value},
        {"x": value},
    )
