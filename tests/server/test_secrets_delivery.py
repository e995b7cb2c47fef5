"""Which secrets a job's payload carries: the names its workflow references (found with the
spec's own expression parser), repository over server-wide, decrypted — and nothing for a
fork's code. Through `fetch_job`, the stage behind `GET /api/v1/runner/jobs/{id}`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from helpers.server import server_context, test_settings
from labci_server.db.models import Event, Job, Repository, Run
from labci_server.db.queries import jobs as job_queries
from labci_server.errors import SecretKeyError
from labci_server.scheduling.runners import (
    create_registration_token,
    fetch_job,
    register_runner,
)
from labci_server.secrets import Scope, generate_key, put_secret, referenced_secrets
from labci_server.secrets.delivery import secrets_for_job
from labci_spec import expand_job, load_workflow

SHA = "d" * 40


def job_spec(steps: str, *, job_env: str = "", workflow_env: str = "", matrix: str = "") -> Any:
    text = f"name: t\non: push\n{workflow_env}jobs:\n  a:\n    runs-on: cpu\n"
    text += f"{job_env}{matrix}    steps:\n{steps}"
    instance = expand_job(load_workflow(text, ".labci/t.yml"), "a")[0]
    return instance.model_dump(mode="json", by_alias=True)


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (job_spec("      - run: echo hi\n"), set()),
        (job_spec('      - run: echo "${{ secrets.Api_Token }}"\n'), {"API_TOKEN"}),
        (job_spec("      - run: echo\n", job_env='    env: {T: "${{ secrets.tok }}"}\n'), {"TOK"}),
        (
            job_spec("      - run: echo\n", workflow_env='env: {W: "${{ secrets.WIDE }}"}\n'),
            {"WIDE"},
        ),
        (job_spec('      - name: "${{ secrets.IN_NAME }}"\n        run: echo\n'), {"IN_NAME"}),
        (
            job_spec('      - run: echo\n        working-directory: "${{ secrets.DIR }}"\n'),
            {"DIR"},
        ),
        (
            job_spec("      - run: echo\n        env: {X: \"${{ secrets['QUOTED'] }}\"}\n"),
            {"QUOTED"},
        ),
        (
            job_spec("      - run: echo \"${{ format('{0}-{1}', secrets.ONE, secrets.TWO) }}\"\n"),
            {"ONE", "TWO"},
        ),
        (
            job_spec(
                '      - run: echo "${{ secrets[matrix.k] }} ${{ toJSON(secrets) }}"\n',
                matrix="    strategy: {matrix: {k: [A]}}\n",
            ),
            set(),
        ),
        (job_spec("      - run: echo secrets.NOT_AN_EXPRESSION $SECRETS_X\n"), set()),
    ],
    ids=[
        "none",
        "run-mixed-case",
        "job-env",
        "workflow-env",
        "step-name",
        "working-directory",
        "step-env-index",
        "format",
        "computed-names-name-nothing",
        "plain-text",
    ],
)
def test_referenced_secrets(spec, names):
    assert referenced_secrets(spec) == names


WORKFLOW_SPEC = job_spec(
    '      - run: echo "${{ secrets.SHARED }} ${{ secrets.server_only }}"\n'
    '        env: {R: "${{ secrets.REPO_ONLY }}", M: "${{ secrets.MISSING }}"}\n'
)
VALUES = {
    ("repo", "REPO_ONLY"): "repository value 1",
    ("repo", "SHARED"): "the repository's own SHARED",
    ("repo", "UNUSED"): "never referenced value",
    ("server", "SHARED"): "server-wide SHARED value",
    ("server", "SERVER_ONLY"): "server-wide only value",
    ("server", "ALSO_UNUSED"): "server-wide unreferenced",
}
EXPECTED = {
    "REPO_ONLY": "repository value 1",
    "SHARED": "the repository's own SHARED",
    "SERVER_ONLY": "server-wide only value",
}


async def add_job(sc, *, trigger: str = "push", trusted: bool = True, from_fork: bool = False):
    async with sc.sessions() as session, session.begin():
        repo = Repository(provider="github", full_name="octo/exp", clone_url="https://x.invalid")
        session.add(repo)
        await session.flush()
        event = Event(
            delivery_id=f"d-{trigger}-{trusted}-{from_fork}",
            provider="github",
            kind=trigger,
            repository_id=repo.id,
            commit_sha=SHA,
            branch="main",
            from_fork=from_fork,
        )
        session.add(event)
        await session.flush()
        run = Run(
            event_id=event.id,
            repository_id=repo.id,
            workflow_path=".labci/t.yml",
            workflow_name="t",
            commit_sha=SHA,
            trigger=trigger,
            branch="main",
            trusted=trusted,
        )
        session.add(run)
        await session.flush()
        job = Job(
            run_id=run.id,
            job_key="a",
            workflow_job="a",
            context="labci/t/a",
            spec=WORKFLOW_SPEC,
            runs_on=["cpu"],
            timeout_s=60,
        )
        session.add(job)
    for (where, name), value in VALUES.items():
        scope = Scope.of_repository(repo) if where == "repo" else Scope.server()
        await put_secret(sc.settings, sc.sessions, scope, name=name, value=value, by="test")
    return run, job


async def delivered(sc, run, job) -> dict[str, str]:
    async with sc.sessions() as session:
        return await secrets_for_job(sc, session, run, job)


async def test_a_runner_fetching_a_job_gets_exactly_the_secrets_it_references(
    database_url, redis_url
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        _run, job = await add_job(sc)
        registered = await register_runner(
            sc,
            registration_token=await create_registration_token(sc),
            name="r1",
            labels=["cpu"],
            slots=1,
        )
        async with sc.sessions() as session, session.begin():
            row = await job_queries.get_job(session, job.id)
            row.runner_id, row.state = registered["runner_id"], "queued"
            session.add(row)
        payload = await fetch_job(sc, token=registered["runner_token"], job_id=job.id, attempt=1)
        assert payload["secrets"] == EXPECTED
        assert "MISSING" not in payload["secrets"]  # stored nowhere: it expands to ""
        assert "never referenced value" not in str(payload)
        assert "server-wide unreferenced" not in str(payload)


@pytest.mark.parametrize(
    ("trigger", "trusted", "from_fork", "expected"),
    [
        ("push", True, False, EXPECTED),
        ("pull_request", True, False, EXPECTED),
        ("workflow_dispatch", True, False, EXPECTED),
        ("pull_request", False, True, {}),
        ("pull_request", False, False, {}),
        ("pull_request", True, True, {}),
        ("pull_request_target", True, False, {}),
    ],
    ids=[
        "push",
        "own-branch-pr",
        "manual",
        "fork-pr",
        "untrusted-run",
        "fork-event",
        "unknown-trigger",
    ],
)
async def test_only_trusted_code_gets_secrets(
    database_url, redis_url, trigger, trusted, from_fork, expected
):
    async with server_context(test_settings(database_url, redis_url)) as sc:
        run, job = await add_job(sc, trigger=trigger, trusted=trusted, from_fork=from_fork)
        assert await delivered(sc, run, job) == expected


async def test_a_key_that_opens_nothing_is_an_error_naming_the_setting(database_url, redis_url):
    settings = test_settings(database_url, redis_url)
    async with server_context(settings) as sc:
        run, job = await add_job(sc)
        wrong = settings.model_copy(update={"secret_key": SecretStr(generate_key())})
        async with sc.sessions() as session:
            with pytest.raises(SecretKeyError, match="LABCI_SECRET_KEY: no key in it decrypts"):
                await secrets_for_job(wrong, session, run, job)
            unset = settings.model_copy(update={"secret_key": None})
            with pytest.raises(SecretKeyError, match="LABCI_SECRET_KEY is not set"):
                await secrets_for_job(unset, session, run, job)
