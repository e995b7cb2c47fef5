"""Workflow texts shared by the spec tests, and helpers to load them.

Every valid workflow a spec test loads goes through `load`, which also checks what must
hold for every valid file: the committed JSON Schema accepts it as an editor reads it,
and the `Workflow` and each of its `JobInstance`s survive the JSON trip to a runner
unchanged. The named ones in `VALID` get those checks as tests of their own
(`test_spec_schema`, `test_spec_model`, `test_spec_instances`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from labci_spec import (
    JobInstance,
    SpecErrors,
    Workflow,
    expand_job,
    load_workflow,
    resolve_inputs,
)
from labci_spec.yamlnodes import FLOAT_TAG, compose_nodes, to_data

SCHEMA_PATH = Path(__file__).parents[2] / "action-spec" / "schema" / "labci-workflow.schema.json"

PATH = ".labci/train.yml"

MINIMAL = """\
on: push
jobs:
  train:
    runs-on: gpu
    steps:
      - run: python train.py
"""


def job_with(*lines: str) -> str:
    """A valid file whose job `train` gets extra lines (indented 4), before its steps."""
    extra = "".join(f"    {line}\n" for line in lines)
    return f"on: push\njobs:\n  train:\n    runs-on: gpu\n{extra}    steps: [{{run: x}}]\n"


def on_with(on: str) -> str:
    """MINIMAL with another `on:` value (a flow-style one-liner)."""
    return MINIMAL.replace("on: push", f"on: {on}")


def step_with(*lines: str) -> str:
    """A valid file whose only step gets extra lines (indented 8) after `run: x`."""
    extra = "".join(f"        {line}\n" for line in lines)
    return f"on: push\njobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run: x\n{extra}"


def load(text: str | bytes) -> Workflow:
    """The workflow of a file that must be valid, checked against the schema and round trips."""
    workflow = load_workflow(text, PATH)
    assert schema_problems(text) == []
    assert_round_trips(workflow)
    return workflow


@functools.cache
def schema_validator() -> Draft202012Validator:
    """The committed schema (test_spec_schema checks that it is the generated one)."""
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def editor_view(text: str | bytes) -> Any:
    """The document as an editor's YAML 1.2 parser sees it: `on` a key, `7.5` a number.

    labci's own loader keeps a float's source text (`3.10` stays "3.10"); editors and the
    JSON Schema see a number, so floats are turned back into numbers here.
    """
    decoded = text.decode("utf-8-sig") if isinstance(text, bytes) else text
    root = compose_nodes(decoded)
    assert root is not None
    data = to_data(root, decoded)
    for loc, place in data.places.items():
        if loc and place.value.tag == FLOAT_TAG:
            parent = data.value
            for part in loc[:-1]:
                parent = parent[part]
            parent[loc[-1]] = yaml_float(str(place.value.value))
    return data.value


def yaml_float(text: str) -> float:
    """A YAML 1.2 core float: `1.5`, `1e3`, `-.inf`, `.NaN`."""
    special = text.lower().lstrip("+-")
    if special in (".inf", ".nan"):
        return float(text.lower().replace(".", ""))
    return float(text)


def schema_problems(text: str | bytes) -> list[str]:
    """What the JSON Schema refuses in `text`: `path.to.value: message`, in a stable order."""
    errors = schema_validator().iter_errors(editor_view(text))
    found = [
        ".".join(str(p) for p in error.absolute_path) + f": {error.message}" for error in errors
    ]
    return sorted(found)


def sample_inputs(workflow: Workflow) -> dict[str, str | float | bool]:
    """Inputs a manual run could give: each required input without a default gets a value."""
    dispatch = workflow.on.workflow_dispatch
    if dispatch is None:
        return {}
    given: dict[str, Any] = {}
    for name, spec in dispatch.inputs.items():
        if spec.required and spec.default is None:
            given[name] = {"number": 1, "boolean": True, "choice": (spec.options or [""])[0]}.get(
                spec.type, "text"
            )
    return resolve_inputs(dispatch, given)


def instances_of(workflow: Workflow) -> list[JobInstance]:
    inputs = sample_inputs(workflow)
    return [
        instance
        for job_id in workflow.jobs
        for instance in expand_job(workflow, job_id, inputs=inputs)
    ]


def assert_round_trips(workflow: Workflow) -> None:
    """A Workflow and its instances, dumped to JSON for a runner, validate back unchanged."""
    dumped = json.loads(json.dumps(workflow.model_dump(mode="json", by_alias=True)))
    assert Workflow.model_validate(dumped) == workflow
    for instance in instances_of(workflow):
        sent = json.loads(json.dumps(instance.model_dump(mode="json", by_alias=True)))
        assert JobInstance.model_validate(sent) == instance


def errors_of(text: str | bytes) -> list[str]:
    """Every error of `text`, as printed (`path:line:col: message`), in the order raised."""
    with pytest.raises(SpecErrors) as caught:
        load_workflow(text, PATH)
    printed = [str(error) for error in caught.value.errors]
    assert str(caught.value) == "\n".join(printed)
    return printed


def located(*errors: str) -> list[str]:
    """`line:col: message` entries as `load_workflow` prints them for PATH."""
    return [f"{PATH}:{error}" for error in errors]


FULL = """\
# yaml-language-server: $schema=../action-spec/schema/labci-workflow.schema.json
name: train-small
on:
  push:
    branches: [main, 'release/**']
    paths: ['src/**', '!src/docs/**']
  pull_request:
    types: [opened, synchronize, ready_for_review]
    branches-ignore: ['wip/**']
    paths-ignore: ['*.md']
  workflow_dispatch:
    inputs:
      epochs: {type: number, default: 3, description: passes over the data}
      fast: {type: boolean, required: true}
      optimizer: {type: choice, options: [adam, sgd], default: adam}
      note: {}
  schedule:
    - cron: '30 2 * * 1-5'
env:
  DATASET: mnist
  DEBUG: false
defaults:
  run: {shell: bash, working-directory: src}
jobs:
  prepare:
    runs-on: cpu
    steps: [{run: make data}]
  mnist:
    name: MNIST ${{ matrix.optimizer }}
    needs: prepare
    if: github.event_name != 'schedule'
    runs-on: [gpu, cuda12]
    env: {SEED: '${{ matrix.seed }}', LR: 0.0010}
    defaults:
      run: {working-directory: train}
    timeout-minutes: 30
    continue-on-error: false
    container:
      image: ghcr.io/lab/pytorch:2.4
      options: --init --shm-size=8G --ulimit nofile=4096:8192
      network: none
    resources: {gpus: 1, cpus: 7.5, memory: 16G, gpu-memory: 20GiB}
    strategy:
      matrix:
        seed: [0, 1, 2]
        optimizer: [adam, sgd]
        exclude:
          - {seed: 2, optimizer: sgd}
        include:
          - {optimizer: sgd, momentum: 0.9}
      fail-fast: false
      max-parallel: 2
    steps:
      - name: train
        run: |
          python train.py --seed ${{ matrix.seed }} --opt ${{ matrix.optimizer }} \\
            --epochs ${{ inputs.epochs }} --out "$LABCI_OUTPUT/metrics.json"
        env: {EPOCHS: 3, FAST: yes}
        timeout-minutes: 20
      - name: evaluate
        if: success() && env.DATASET == 'mnist'
        run: python eval.py
        shell: python
        working-directory: eval
        continue-on-error: true
      - if: always()
        run: echo done
    metrics:
      files: [metrics.json, eval/scores.csv]
      repeats: seed
      compare:
        accuracy: {goal: max, tolerance: 0.005}
        loss: {goal: min, tolerance: 2%, gate: false}
    artifacts:
      paths: ['checkpoints/*.pt', 'plots/**']
      max-size: 512M
    cache:
      paths: [data, .cache/pip]
      key: data-${{ hashFiles('requirements.txt') }}
"""

# Issue 11's file: a misspelt key used to hide its three rule errors until it was fixed.
ISSUE_FILE = """\
on: push
jobs:
  train:
    runs_on: gpu
    needs: [nope]
    strategy: {matrix: {seed: [0, 1, 2]}}
    steps:
      - run: python train.py --seed ${{ matrix.sed }}
    metrics: {repeats: seeds}
"""

# The four realistic shapes issue 3 asks for, kept small.
PYTORCH_SEEDS = """\
name: pytorch-seeds
on:
  pull_request:
    paths: ['model/**', 'train.py']
jobs:
  train:
    runs-on: [gpu, a100]
    container: {image: 'pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime', options: --shm-size=16G}
    resources: {gpus: 1, memory: 32G}
    strategy:
      matrix:
        seed: [0, 1, 2, 3, 4]
    steps:
      - run: python train.py --seed "${{ matrix.seed }}" --out "$LABCI_OUTPUT"
    metrics:
      file: metrics.json
      repeats: seed
      compare:
        val/accuracy: {goal: max, tolerance: 0.5%}
"""

CPU_EVAL = """\
on: [push, pull_request]
jobs:
  evaluate:
    runs-on: cpu
    timeout-minutes: 15
    steps:
      - run: pip install -r requirements.txt
      - run: python evaluate.py --out $LABCI_OUTPUT/scores.yaml
    metrics: {file: scores.yaml, compare: {f1: {goal: max}}}
"""

BENCHMARK_NEEDS = """\
on:
  push: {branches: [main]}
jobs:
  build:
    runs-on: cpu
    steps: [{run: make}]
  bench:
    needs: build
    runs-on: [gpu]
    steps:
      - run: ./bench --json > "$LABCI_OUTPUT/bench.json"
    metrics:
      file: bench.json
      compare:
        throughput: {goal: max, tolerance: 3%}
        latency_ms: {goal: min, tolerance: 0.5}
  report:
    needs: [build, bench]
    if: always()
    runs-on: cpu
    steps: [{run: echo report}]
"""

DISPATCH_SWEEP = """\
on:
  workflow_dispatch:
    inputs:
      lr:
        type: number
        default: 0.001
      optimizer:
        type: choice
        options: [adam, sgd]
        required: true
      tag:
        description: free text
jobs:
  sweep:
    name: sweep ${{ inputs.optimizer }}
    runs-on: 'gpu-${{ inputs.optimizer }}'
    strategy:
      matrix:
        batch: [32, 64]
    steps:
      - run: python sweep.py --lr ${{ inputs.lr }} --batch ${{ matrix.batch }}
        env:
          TAG: ${{ inputs.tag }}
"""

# GitHub's documented matrix examples ("Running variations of jobs in a workflow").
MATRIX_FRUIT = job_with(
    "strategy:",
    "  matrix:",
    "    fruit: [apple, pear]",
    "    animal: [cat, dog]",
    "    include:",
    "      - color: green",
    "      - color: pink",
    "        animal: cat",
    "      - fruit: apple",
    "        shape: circle",
    "      - fruit: banana",
    "      - fruit: banana",
    "        animal: cat",
)
MATRIX_NODE_NPM = job_with(
    "strategy:",
    "  matrix:",
    "    os: [windows-latest, ubuntu-latest]",
    "    node: [14, 16]",
    "    include:",
    "      - os: windows-latest",
    "        node: 16",
    "        npm: 6",
)
MATRIX_EXCLUDE = job_with(
    "strategy:",
    "  matrix:",
    "    os: [macos-latest, windows-latest]",
    "    version: [12, 14, 16]",
    "    environment: [staging, production]",
    "    exclude:",
    "      - os: macos-latest",
    "        version: 12",
    "        environment: production",
    "      - os: windows-latest",
    "        version: 16",
)
MATRIX_INCLUDE_ONLY = job_with(
    "strategy:",
    "  matrix:",
    "    include:",
    "      - site: production",
    "        datacenter: site-a",
    "      - site: staging",
    "        datacenter: site-b",
)
MATRIX_EXPAND = job_with(
    "strategy:",
    "  matrix:",
    "    os: [windows-latest, ubuntu-latest]",
    "    node: [14, 18]",
    "    include:",
    "      - os: windows-latest",
    "        node: 16",
)

HOSTILE_VALUES = [
    'a"; touch pwned #',
    "$(id)",
    "`id`",
    "${IFS}cat${IFS}/etc/passwd",
    "line1\nline2",
    "\x1b[31mred\x1b[0m",
    "it's",
]


def _quoted(value: str) -> str:
    """`value` as a YAML double-quoted scalar."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\x1b", "\\e") + '"'


ENV_HOSTILE = (
    "on: push\nenv:\n"
    + "".join(f"  V{index}: {_quoted(value)}\n" for index, value in enumerate(HOSTILE_VALUES))
    + ('jobs:\n  train:\n    runs-on: gpu\n    steps:\n      - run: echo "$V0" "$V1"\n')
)

VALID: dict[str, str] = {
    "minimal": MINIMAL,
    "full": FULL,
    "pytorch-seeds": PYTORCH_SEEDS,
    "cpu-eval": CPU_EVAL,
    "benchmark-needs": BENCHMARK_NEEDS,
    "dispatch-sweep": DISPATCH_SWEEP,
    "matrix-fruit": MATRIX_FRUIT,
    "matrix-node-npm": MATRIX_NODE_NPM,
    "matrix-exclude": MATRIX_EXCLUDE,
    "matrix-include-only": MATRIX_INCLUDE_ONLY,
    "matrix-expand": MATRIX_EXPAND,
    "env-hostile": ENV_HOSTILE,
    # on:
    "on-string": on_with("pull_request"),
    "on-list": on_with("[push, pull_request]"),
    "on-null-events": on_with("{push: null, pull_request: ~}"),
    "on-empty-filters": on_with("{pull_request: {}}"),
    "on-branch-string": on_with("{push: {branches: 'release/**'}}"),
    "on-branches-ignore": on_with("{push: {branches-ignore: ['wip/**', 'tmp']}}"),
    "on-paths-negated": on_with("{push: {paths: ['src/**', '!src/docs/**']}}"),
    "on-paths-ignore": on_with("{pull_request: {paths-ignore: ['docs/**', '*.md']}}"),
    "on-pr-types": on_with("{pull_request: {types: [ready_for_review]}}"),
    "on-pr-type-string": on_with("{pull_request: {types: opened}}"),
    "on-dispatch-bare": on_with("workflow_dispatch"),
    "on-dispatch-inputs": on_with(
        "{workflow_dispatch: {inputs: {"
        "lr: {type: number, default: 0.01}, "
        "fast: {type: boolean, default: true}, "
        "opt: {type: choice, options: [adam, sgd], default: adam}, "
        "note: {description: why, required: true}}}}"
    ),
    "on-schedule": on_with("{schedule: [{cron: '0 3 * * *'}, {cron: '*/15 9-17 * * MON-FRI'}]}"),
    "on-everything": on_with(
        "[push, pull_request, workflow_dispatch]",
    ),
    # workflow level
    "name-number": "name: 1.0\n" + MINIMAL,
    "name-yes": "name: yes\n" + MINIMAL,
    "env-scalars": "env: {SEED: 0, LR: 0.0010, DEBUG: false, MODE: on, NAME: mnist}\n" + MINIMAL,
    "defaults-workflow": "defaults: {run: {shell: sh, working-directory: src}}\n" + MINIMAL,
    # jobs.<id>
    "job-name": job_with("name: Train on MNIST"),
    "runs-on-list": job_with("runs-on: [gpu, a100, 'cuda-12']").replace(
        "    runs-on: gpu\n", "", 1
    ),
    "needs-string": "on: push\njobs:\n  a: {runs-on: x, steps: [{run: x}]}\n"
    "  b: {runs-on: x, needs: a, steps: [{run: x}]}\n",
    "if-bare": job_with(
        "if: github.ref_name == 'main' && matrix.seed != 1", "strategy: {matrix: {seed: [0, 1]}}"
    ),
    "if-wrapped": job_with("if: ${{ inputs.fast }}").replace(
        "on: push", "on: {workflow_dispatch: {inputs: {fast: {type: boolean}}}}"
    ),
    "if-status": job_with("if: failure() || cancelled()"),
    "timeout-hex": job_with("timeout-minutes: 0x1e"),
    "timeout-max": job_with("timeout-minutes: 4320"),
    "continue-on-error": job_with("continue-on-error: true"),
    "container-shorthand": job_with("container: lab/pytorch:2.4"),
    "container-full": job_with(
        "container: {image: lab/pt, options: '--init --ulimit memlock=-1 --shm-size 1g', network: host}"
    ),
    "container-rendered": job_with(
        "container: 'lab/pytorch:${{ matrix.torch }}'",
        "strategy: {matrix: {torch: ['2.3', '2.4']}}",
    ),
    "resources-sizes": job_with(
        "resources: {gpus: 2, cpus: 16, memory: 1.5GiB, gpu-memory: 24000M}"
    ),
    "resources-bytes": job_with("resources: {memory: 1073741824}"),
    "resources-none": job_with("resources: {}"),
    "strategy-options": job_with(
        "strategy: {matrix: {seed: [1, 2]}, fail-fast: false, max-parallel: 1}"
    ),
    "matrix-values": job_with("strategy: {matrix: {cfg: [{lr: 1}, [1, 2], null, true, 3.10, '']}}"),
    "metrics-file": job_with("metrics: {file: out/metrics.json}"),
    "metrics-files-list": job_with("metrics: {files: [a.json, b.yml, c.csv]}"),
    "metrics-lines-only": job_with("metrics: {compare: {accuracy: {goal: max}}}"),
    "metrics-tolerances": job_with(
        "metrics: {compare: {a: {goal: max, tolerance: 0}, b: {goal: min, tolerance: 1.5 %},"
        " c: {goal: max, tolerance: 10}, d.e/f-g_h: {goal: min, gate: false}}}"
    ),
    "metrics-adaptive-repeats": job_with(
        "strategy: {matrix: {seed: [0, 1, 2], lr: [0.1, 0.01]}}",
        "metrics: {repeats: {axis: seed, max: 20}}",
    ),
    "metrics-repeats-mapping-without-max": job_with(
        "strategy: {matrix: {seed: [a, b]}}", "metrics: {repeats: {axis: seed}}"
    ),
    "metrics-alpha-and-test-size": job_with(
        "metrics: {alpha: 0.01, compare: {acc: {goal: max, test-size: 10000},"
        " top5/pct: {goal: max, tolerance: 0.5, test-size: 1000000000}}}"
    ),
    "artifacts-list": job_with("artifacts: ['ckpt/*.pt', 'logs/**']"),
    "artifacts-string": job_with("artifacts: model.onnx"),
    "artifacts-mapping": job_with("artifacts: {paths: plots, max-size: 100M}"),
    "cache-key": job_with(
        "cache: {paths: data, key: \"v1-${{ hashFiles('req.txt') }}-${{ env.X }}\"}"
    ),
    # steps
    "step-everything": step_with(
        "name: fit",
        "if: always()",
        "env: {A: 1, B: 'two'}",
        "shell: 'python3 -u {0}'",
        "working-directory: sub/dir",
        "timeout-minutes: 5",
        "continue-on-error: true",
    ),
    "step-secrets": MINIMAL.replace(
        "python train.py", "'curl -H \"token: ${{ secrets.TOKEN }}\" x'"
    ),
    "step-block": MINIMAL.replace(
        "- run: python train.py", "- run: |\n          echo one\n          echo two"
    ),
    "step-folded": MINIMAL.replace(
        "- run: python train.py", "- run: >-\n          python train.py\n          --fast"
    ),
    "comments-and-quotes": "# a comment\n'on': \"push\"  # trailing\njobs:\n  train:\n"
    "    'runs-on': gpu\n    steps:\n      - {'run': 'echo \"hi\"'}\n",
}
