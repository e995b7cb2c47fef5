"""`concurrency:` in the workflow format: its spellings, where expressions may read what,
and the group a planned run or job gets (labci_spec.concurrency)."""

from __future__ import annotations

import pytest

from labci_spec import ExpressionError, github_context, load_workflow
from labci_spec.concurrency import Group, github_concurrency_context, resolve_group
from labci_spec.errors import SpecErrors


def workflow(top: str = "", job: str = "") -> str:
    return (
        f"on: [push, pull_request]\n{top}"
        "jobs:\n  train:\n    runs-on: cpu\n"
        "    strategy: {matrix: {gpu: [a100, h100]}}\n"
        f"{job}    steps: [{{run: 'true'}}]\n"
    )


def errors(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        load_workflow(text, ".labci/ci.yml")
    return [str(e) for e in caught.value.errors]


def github(event: str = "push", branch: str = "main", pr: int | None = None) -> dict[str, str]:
    base = github_context(event=event, branch=branch, base_branch="main", sha="f" * 40,
                          pr_number=pr)  # fmt: skip
    return github_concurrency_context(base, workflow="ci", repository="octo/exp", run_id=12)


def test_the_spellings() -> None:
    short = load_workflow(workflow("concurrency: nightly\n"), ".labci/ci.yml")
    assert (short.concurrency.group, short.concurrency.cancel_in_progress) == ("nightly", False)
    full = load_workflow(
        workflow(
            job="    concurrency: {group: 'box-${{ matrix.gpu }}', cancel-in-progress: true}\n"
        ),
        ".labci/ci.yml",
    )
    assert full.jobs["train"].concurrency.cancel_in_progress is True


@pytest.mark.parametrize(
    ("top", "job", "expected"),
    [
        (
            "concurrency: ${{ matrix.gpu }}\n",
            "",
            "2:18: concurrency: `matrix.gpu`: context 'matrix' is not available here"
            " (use github, inputs)",
        ),
        (
            "",
            "    concurrency: ${{ env.X }}\n",
            "6:22: jobs.train.concurrency: `env.X`: context 'env' is not available here"
            " (use matrix, github, inputs)",
        ),
        (
            "concurrency: {group: x, cancel-in-progress: yes please}\n",
            "",
            "2:45: concurrency.cancel-in-progress: expected true, false or an expression such"
            " as ${{ github.ref_name != 'main' }}, got 'yes please'",
        ),
        (
            "concurrency: {cancel-in-progress: true}\n",
            "",
            "2:1: concurrency: missing required key 'group'",
        ),
        (
            "concurrency: ${{ github.event.number }}\n",
            "",
            "2:18: concurrency: `github.event.number` is not available; this field can read"
            " github.event_name, github.ref_name, github.base_ref, github.head_ref, github.sha,"
            " github.workflow, github.ref, github.repository, github.run_id",
        ),
    ],
)
def test_mistakes_are_located(top: str, job: str, expected: str) -> None:
    assert errors(workflow(top, job)) == [f".labci/ci.yml:{expected}"]


def test_groups_as_github_sets_its_context() -> None:
    declared = load_workflow(
        workflow(
            "concurrency:\n  group: ${{ github.workflow }}-${{ github.ref }}\n"
            "  cancel-in-progress: ${{ github.ref_name != 'main' }}\n"
        ),
        ".labci/ci.yml",
    ).concurrency
    assert resolve_group(declared, {"github": github()}) == Group("ci-refs/heads/main", False)
    assert resolve_group(declared, {"github": github(branch="dev")}) == Group(
        "ci-refs/heads/dev", True
    )
    assert resolve_group(declared, {"github": github("pull_request", "feature", 7)}) == Group(
        "ci-refs/pull/7/merge", True
    )


def test_the_head_ref_or_run_id_idiom_and_an_empty_group() -> None:
    declared = load_workflow(
        workflow("concurrency: ${{ github.head_ref || github.run_id }}\n"), ".labci/ci.yml"
    ).concurrency
    assert resolve_group(declared, {"github": github()}) == Group("12", False)
    assert resolve_group(declared, {"github": github("pull_request", "feature", 7)}) == Group(
        "feature", False
    )
    empty = load_workflow(workflow("concurrency: ${{ github.head_ref }}\n"), ".labci/ci.yml")
    assert resolve_group(empty.concurrency, {"github": github()}) is None


def test_a_job_group_reads_its_matrix_and_a_huge_one_is_refused() -> None:
    job = load_workflow(
        workflow(job="    concurrency: box-${{ matrix.gpu }}\n"), ".labci/ci.yml"
    ).jobs["train"]
    assert resolve_group(job.concurrency, {"matrix": {"gpu": "h100"}, "github": github()}) == (
        Group("box-h100", False)
    )
    with pytest.raises(ExpressionError, match="characters once rendered; the limit is 1000"):
        resolve_group(job.concurrency, {"matrix": {"gpu": "x" * 2000}, "github": github()})
