"""Verdicts against a baseline, on real git repositories (the local forge), the test's real
database and Redis: which baseline is used, what the status says, `baseline: auto`, the
pull request comment, and contexts that a new head of a pull request no longer runs.

Jobs are finished through `finish_job`, the stage function the runner API calls; the
record a runner would send (labels, GPUs) is set on the row first, as `complete_job` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from bs4 import BeautifulSoup
from test_planning import push_event

from helpers.gitrepo import TestRepo, make_repo
from helpers.gitrepo import git as run_git
from helpers.people import admin_token, bearer
from helpers.server import server_context, test_settings
from labci_server.app import create_app
from labci_server.db.models import ContextVerdict, Job
from labci_server.db.queries import jobs as job_queries
from labci_server.db.queries import outbox as outbox_queries
from labci_server.db.queries.events import unplanned_events
from labci_server.db.queries.repositories import find_repository
from labci_server.db.queries.runs import jobs_of_run, runs_for_event
from labci_server.db.queries.verdicts import verdicts_of_runs
from labci_server.forge.outbox import PR_COMMENT_MARKER, deliver_due
from labci_server.planning.planner import plan_event
from labci_server.results.ingest import finish_job
from labci_server.web.badge_tokens import ensure_badge_token
from labci_server.webhooks.github import NewEvent
from labci_server.webhooks.ingest import store_event

TRAIN = """\
name: train
on: [push, pull_request]
jobs:
  fit:
    runs-on: cpu
    steps: [{run: python train.py}]
    metrics:
      file: m.json
      compare:
        acc: {goal: max, tolerance: 0.005}
        loss: {goal: min, tolerance: 2%, gate: false}
  deploy:
    runs-on: cpu
    steps: [{run: ./deploy}]
"""

SEEDS = """\
name: seeds
on: [push, pull_request]
jobs:
  fit:
    runs-on: cpu
    strategy: {matrix: {seed: [0, 1, 2, 3, 4]}}
    steps: [{run: "python train.py --seed ${{ matrix.seed }}"}]
    metrics:
      file: m.json
      repeats: seed
      compare:
        acc: {goal: max, tolerance: 0.005}
"""

PR_NUMBER = 5
# Earlier single-run results on main (acc, loss): the noise a single run is judged with.
MAIN_HISTORY = [(0.910, 0.230), (0.914, 0.233), (0.911, 0.229), (0.913, 0.232)]


@dataclass
class Repo:
    sc: Any
    git: TestRepo

    async def push(
        self, sha: str, delivery: str, *, before: str | None = None, branch: str = "main"
    ) -> int:
        new = push_event(self.git.bare, sha, delivery, branch)
        if before:
            new = replace(new, base_sha=before)
        return await self._plan(new)

    async def pull_request(
        self, sha: str, base_sha: str, delivery: str, *, action: str = "opened"
    ) -> int:
        return await self._plan(
            NewEvent(
                delivery_id=delivery,
                provider="git",
                kind="pull_request",
                action=action,
                repo_full_name=str(self.git.bare),
                clone_url=str(self.git.bare),
                commit_sha=sha,
                branch="feature",
                base_branch="main",
                base_sha=base_sha,
                pr_number=PR_NUMBER,
            )
        )

    async def main_history(self, values: list[tuple[float, float]] = MAIN_HISTORY) -> None:
        """Single-run results of `train` on earlier commits of main."""
        for i, (acc, loss) in enumerate(values):
            sha = self.git.commit({"history.txt": f"{i}\n"})
            event = await self.push(sha, f"push-history-{i}")
            await self.finish((await self.jobs(event))["fit"], {"acc": acc, "loss": loss})

    async def _plan(self, new: NewEvent) -> int:
        event_id = await store_event(self.sc, new)
        assert event_id is not None
        await plan_event(self.sc, event_id)
        return event_id

    async def jobs(self, event_id: int, workflow: str = "train") -> dict[str, Job]:
        async with self.sc.sessions() as session:
            runs = [
                r for r in await runs_for_event(session, event_id) if r.workflow_name == workflow
            ]
            if not runs:
                return {}
            return {j.job_key: j for j in await jobs_of_run(session, runs[0].id or 0)}

    async def finish(
        self,
        job: Job,
        metrics: dict[str, float] | None,
        *,
        outcome: str = "success",
        labels: tuple[str, ...] = ("cpu",),
        gpus: tuple[str, ...] = (),
    ) -> None:
        async with self.sc.sessions() as session, session.begin():
            row = await job_queries.get_job(session, job.id or 0, for_update=True)
            assert row is not None
            row.record = {
                "runner": "r1",
                "runner_labels": list(labels),
                "gpus": [{"id": str(i), "model": model} for i, model in enumerate(gpus)],
                "matrix": row.spec.get("matrix") or {},
            }
            await finish_job(
                session,
                row,
                outcome=outcome,
                reason=None if outcome == "success" else f"it went {outcome}",
                metrics=metrics,
                run_url=f"http://labci.test/runs/{row.run_id}",
            )

    async def status(self, sha: str, context: str) -> tuple[str, str]:
        """The newest status queued for the context: (state, description)."""
        async with self.sc.sessions() as session:
            messages = await outbox_queries.messages_for_commit(
                session, repository_id=await self.repository_id(), commit_sha=sha
            )
        live = [m for m in messages if m.context == context and m.status != "superseded"]
        assert live, f"no status for {context} on {sha[:7]}"
        return live[-1].state, live[-1].description

    async def verdict(self, event_id: int, context: str) -> ContextVerdict:
        async with self.sc.sessions() as session:
            runs = await runs_for_event(session, event_id)
            (found,) = [
                v
                for v in await verdicts_of_runs(session, [r.id or 0 for r in runs])
                if v.context == context
            ]
            return found

    async def repository_id(self) -> int:
        async with self.sc.sessions() as session:
            repo = await find_repository(session, provider="git", full_name=str(self.git.bare))
            assert repo is not None
            return repo.id or 0

    async def comment(self) -> str | None:
        await deliver_due(self.sc.sessions, self.sc.forges, self.sc.outbox_policy)
        async with self.sc.sessions() as session:
            row = await outbox_queries.pull_request_comment(
                session, repository_id=await self.repository_id(), pr_number=PR_NUMBER
            )
        return row.body if row else None


def repo_with(tmp_path: Path, files: dict[str, str]) -> tuple[TestRepo, str]:
    git = make_repo(tmp_path)
    return git, git.commit(files)


async def test_a_regression_beyond_tolerance_fails_and_the_comment_shows_it(
    tmp_path, database_url, redis_url
):
    git, _ = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        await repo.main_history()
        base = git.commit({"model.py": "base\n"})
        head = git.commit({"model.py": "worse\n"}, branch="feature")
        pushed = await repo.push(base, "push-base")
        await repo.finish((await repo.jobs(pushed))["fit"], {"acc": 0.912, "loss": 0.231})
        assert await repo.status(base, "labci/train/fit") == (
            "success",
            "acc 0.912 · loss 0.231 · no baseline",
        )

        pr = await repo.pull_request(head, base, "pr-1")
        await repo.finish((await repo.jobs(pr))["fit"], {"acc": 0.85, "loss": 0.25})
        state, description = await repo.status(head, "labci/train/fit")
        assert state == "failure"
        assert description == "acc 0.85 (−0.062) · loss 0.25 (+0.019) · 1 regression"
        verdict = await repo.verdict(pr, "labci/train/fit")
        assert verdict.details["baseline"]["source"] == "base commit"
        assert verdict.details["baseline"]["commit"] == base
        rows = {row["name"]: row for row in verdict.details["metrics"]}
        assert rows["acc"]["verdict"] == "regressed"
        # One run per side: the spread of main's 4 earlier runs is the noise (the base's
        # own run is the baseline, not history).
        assert rows["acc"]["method"] == "pooled"
        assert "noise from 4 base-branch results" in rows["acc"]["explanation"]
        assert rows["loss"]["verdict"] == "regressed"  # worse than 2 %, but not gated
        assert rows["loss"]["gate"] is False

        body = await repo.comment()
        assert body is not None
        assert body.startswith(PR_COMMENT_MARKER)
        assert "**1 gated regression**" in body
        acc_row = next(line for line in body.splitlines() if line.startswith("| `acc`"))
        assert "0.912" in acc_row
        assert "0.85" in acc_row
        assert "**regressed**" in acc_row
        assert "−6.80 %" in acc_row
        assert "worse by more than the tolerance 0.005" in acc_row
        assert "fails for noise at most 5 % of the time" in body
        assert f"base commit `{base[:7]}`" in body
        assert "Reproducibility record" in body

        # A second push to the pull request: the same comment now shows the fix.
        fixed = git.commit({"model.py": "better\n"}, branch="feature")
        again = await repo.pull_request(fixed, base, "pr-2", action="synchronize")
        await repo.finish((await repo.jobs(again))["fit"], {"acc": 0.915, "loss": 0.231})
        assert await repo.status(fixed, "labci/train/fit") == (
            "success",
            "acc 0.915 (+0.003) · loss 0.231 (±0)",
        )
        updated = await repo.comment()
        assert updated is not None
        assert fixed[:7] in updated
        assert "regressed" not in updated
        async with sc.sessions() as session:
            sent = [
                m
                for m in await outbox_queries.messages_by_status(session, "sent")
                if m.kind == "comment"
            ]
        assert {m.commit_sha for m in sent} == {f"pr:{PR_NUMBER}"}


async def test_noise_without_a_real_change_is_not_a_regression(tmp_path, database_url, redis_url):
    git, base = repo_with(tmp_path, {".labci/seeds.yml": SEEDS})
    noisy = git.commit({"model.py": "same\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pushed = await repo.push(base, "push-base")
        for seed, acc in enumerate([0.90, 0.93, 0.91, 0.88, 0.92]):
            await repo.finish((await repo.jobs(pushed, "seeds"))[f"fit ({seed})"], {"acc": acc})
        pr = await repo.pull_request(noisy, base, "pr-noise")
        for seed, acc in enumerate([0.89, 0.92, 0.90, 0.87, 0.91]):  # mean −0.01, spread 0.02
            await repo.finish((await repo.jobs(pr, "seeds"))[f"fit ({seed})"], {"acc": acc})
        state, description = await repo.status(noisy, "labci/seeds/fit")
        assert state == "success"
        assert description == "acc 0.898 (−0.01) · mean of 5"
        (acc,) = (await repo.verdict(pr, "labci/seeds/fit")).details["metrics"]
        assert acc["verdict"] == "inconclusive"
        assert acc["p_value"] > 0.05
        assert acc["base"]["n"] == acc["head"]["n"] == 5
        low, high = acc["interval"]
        assert low < 0 < high

        real = git.commit({"model.py": "worse\n"}, branch="feature")
        pr2 = await repo.pull_request(real, base, "pr-real", action="synchronize")
        for seed, acc_value in enumerate([0.851, 0.853, 0.849, 0.852, 0.850]):
            await repo.finish((await repo.jobs(pr2, "seeds"))[f"fit ({seed})"], {"acc": acc_value})
        state, description = await repo.status(real, "labci/seeds/fit")
        assert state == "failure"
        assert description.endswith("1 regression · mean of 5")
        (acc,) = (await repo.verdict(pr2, "labci/seeds/fit")).details["metrics"]
        assert acc["verdict"] == "regressed"
        assert acc["p_value"] < 0.01


async def test_baseline_auto_measures_a_base_that_never_ran(tmp_path, database_url, redis_url):
    git, base = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    head = git.commit({"model.py": "new\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pr = await repo.pull_request(head, base, "pr-auto")
        await repo.finish((await repo.jobs(pr))["fit"], {"acc": 0.93, "loss": 0.2})
        assert await repo.status(head, "labci/train/fit") == (
            "pending",
            "acc 0.93 · loss 0.2 · measuring the baseline at " + base[:7],
        )
        waiting = await repo.verdict(pr, "labci/train/fit")
        assert (waiting.phase, waiting.baseline_sha) == ("awaiting_baseline", base)

        async with sc.sessions() as session:
            (measure,) = [e for e in await unplanned_events(session, received_before=1e12)]
        assert (measure.kind, measure.commit_sha, measure.branch) == ("baseline", base, "main")
        await plan_event(sc, measure.id or 0)
        jobs = await repo.jobs(measure.id or 0)
        assert sorted(jobs) == ["fit"]  # `deploy` reports no metrics: not run for a baseline
        await repo.finish(jobs["fit"], {"acc": 0.91, "loss": 0.2})

        assert await repo.status(head, "labci/train/fit") == (
            "success",
            "acc 0.93 (+0.02) · loss 0.2 (±0)",
        )
        final = await repo.verdict(pr, "labci/train/fit")
        assert final.phase == "final"
        assert final.details["baseline"]["commit"] == base
        rows = {row["name"]: row["verdict"] for row in final.details["metrics"]}
        # One run per side and no history on main: shown, not judged.
        assert rows == {"acc": "unverified", "loss": "unverified"}
        # The base commit shows its own measurement too.
        assert (await repo.status(base, "labci/train/fit"))[0] == "success"


async def test_baseline_auto_ends_the_wait_when_the_base_has_no_such_workflow(
    tmp_path, database_url, redis_url
):
    git, base = repo_with(tmp_path, {"README.md": "no workflows yet\n"})
    head = git.commit({".labci/train.yml": TRAIN}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pr = await repo.pull_request(head, base, "pr-new-workflow")
        await repo.finish((await repo.jobs(pr))["fit"], {"acc": 0.93, "loss": 0.2})
        assert (await repo.status(head, "labci/train/fit"))[0] == "pending"
        async with sc.sessions() as session:
            (measure,) = await unplanned_events(session, received_before=1e12)
        await plan_event(sc, measure.id or 0)
        assert await repo.status(head, "labci/train/fit") == (
            "success",
            "acc 0.93 · loss 0.2 · no baseline",
        )
        verdict = await repo.verdict(pr, "labci/train/fit")
        assert verdict.details["no_baseline"] == (
            f"the base commit {base[:7]} cannot be measured: "
            ".labci/train.yml:1:1: no workflow file .labci/train.yml at this commit"
        )
        async with sc.sessions() as session:  # the base's author is not told about it
            assert (
                await outbox_queries.messages_for_commit(
                    session, repository_id=await repo.repository_id(), commit_sha=base
                )
                == []
            )


async def test_baseline_existing_never_measures_the_base(tmp_path, database_url, redis_url):
    existing = TRAIN.replace(
        "      file: m.json\n", "      file: m.json\n      baseline: existing\n"
    )
    git, base = repo_with(tmp_path, {".labci/train.yml": existing})
    head = git.commit({"model.py": "new\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pr = await repo.pull_request(head, base, "pr-existing")
        await repo.finish((await repo.jobs(pr))["fit"], {"acc": 0.93, "loss": 0.2})
        assert await repo.status(head, "labci/train/fit") == (
            "success",
            "acc 0.93 · loss 0.2 · no baseline",
        )
        async with sc.sessions() as session:
            assert await unplanned_events(session, received_before=1e12) == []


async def test_a_pull_request_waits_for_its_base_commit_still_running(
    tmp_path, database_url, redis_url
):
    git, base = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    head = git.commit({"model.py": "new\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pushed = await repo.push(base, "push-base")
        pr = await repo.pull_request(head, base, "pr-early")
        await repo.finish((await repo.jobs(pr))["fit"], {"acc": 0.80, "loss": 0.2})
        assert await repo.status(head, "labci/train/fit") == (
            "pending",
            "acc 0.8 · loss 0.2 · waiting for the baseline at " + base[:7],
        )
        await repo.finish((await repo.jobs(pushed))["fit"], {"acc": 0.9, "loss": 0.2})
        # Judged once the base is measured: one run per side and no history, so shown
        # (far worse) but not gated.
        assert await repo.status(head, "labci/train/fit") == (
            "success",
            "acc 0.8 (−0.1) · loss 0.2 (±0)",
        )
        rows = (await repo.verdict(pr, "labci/train/fit")).details["metrics"]
        assert {row["name"]: row["verdict"] for row in rows} == {
            "acc": "unverified",
            "loss": "unverified",
        }


async def test_a_baseline_from_other_hardware_is_flagged_and_same_hardware_preferred(
    tmp_path, database_url, redis_url
):
    git, base = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    head = git.commit({"model.py": "new\n"}, branch="feature")
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        on_a100 = await repo.push(base, "push-a100")
        await repo.finish(
            (await repo.jobs(on_a100))["fit"], {"acc": 0.90, "loss": 0.2}, gpus=("NVIDIA A100",)
        )
        # A second measurement of the same commit: one run per (commit, workflow, branch).
        on_v100 = await repo.push(base, "push-v100", branch="release")
        await repo.finish(
            (await repo.jobs(on_v100))["fit"], {"acc": 0.70, "loss": 0.2}, gpus=("Tesla V100",)
        )
        pr = await repo.pull_request(head, base, "pr-hw")
        await repo.finish(
            (await repo.jobs(pr))["fit"], {"acc": 0.91, "loss": 0.2}, gpus=("NVIDIA A100",)
        )
        verdict = await repo.verdict(pr, "labci/train/fit")
        # The older A100 result is preferred over the newer V100 one.
        assert verdict.details["baseline"]["same_hardware"] is True
        assert verdict.details["baseline"]["hardware"] == "NVIDIA A100 · cpu"
        assert verdict.description == "acc 0.91 (+0.01) · loss 0.2 (±0)"

        other = git.commit({"model.py": "on other GPUs\n"}, branch="feature")
        pr2 = await repo.pull_request(other, base, "pr-hw-2", action="synchronize")
        await repo.finish(
            (await repo.jobs(pr2))["fit"], {"acc": 0.91, "loss": 0.2}, gpus=("NVIDIA H100",)
        )
        flagged = await repo.verdict(pr2, "labci/train/fit")
        assert flagged.details["baseline"]["same_hardware"] is False
        assert flagged.description.endswith("· baseline on other hardware")
        body = await repo.comment()
        assert body is not None
        assert "**other hardware**" in body
        assert "NVIDIA H100" in body


async def test_a_job_without_its_metrics_is_an_error(tmp_path, database_url, redis_url):
    git, base = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        first = await repo.push(base, "push-none")
        await repo.finish((await repo.jobs(first))["fit"], {})
        assert await repo.status(base, "labci/train/fit") == (
            "error",
            "no metrics: the job reported none of acc, loss",
        )
        second = git.commit({"model.py": "x\n"})
        again = await repo.push(second, "push-loss-only", before=base)
        await repo.finish((await repo.jobs(again))["fit"], {"loss": 0.3})
        assert await repo.status(second, "labci/train/fit") == (
            "error",
            "gated metrics missing: acc",
        )


async def test_a_failed_job_keeps_its_outcome(tmp_path, database_url, redis_url):
    git, base = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        pushed = await repo.push(base, "push-fail")
        await repo.finish((await repo.jobs(pushed))["fit"], None, outcome="failure")
        assert await repo.status(base, "labci/train/fit") == ("failure", "it went failure")


PATHS = """\
name: docs
on:
  pull_request: {paths: ["docs/**"]}
jobs:
  build: {runs-on: cpu, steps: [{run: make docs}]}
"""


async def test_a_context_skipped_by_paths_on_a_later_push_ends_in_success(
    tmp_path, database_url, redis_url
):
    git, base = repo_with(tmp_path, {".labci/docs.yml": PATHS, "docs/a.md": "a\n"})
    docs = git.commit({"docs/a.md": "b\n"}, branch="feature")
    run_git(git.work, "checkout", "-q", "main")  # the author rewrites the pull request:
    code = git.commit({"model.py": "x\n"}, branch="rewritten")  # now it changes no docs
    async with server_context(test_settings(database_url, redis_url)) as sc:
        repo = Repo(sc, git)
        first = await repo.pull_request(docs, base, "pr-docs")
        assert sorted(await repo.jobs(first, "docs")) == ["build"]
        # The pull request's new head changes no docs: the workflow does not run, but the
        # context it showed before gets a final state on the new head.
        run_git(git.work, "push", "-q", "--force", "origin", f"{code}:refs/heads/feature")
        second = await repo.pull_request(code, base, "pr-code", action="synchronize")
        assert await repo.jobs(second, "docs") == {}
        assert await repo.status(code, "labci/docs/build") == (
            "success",
            "skipped: no matching paths",
        )
        # An edit of the title brings no new head: nothing more is posted.
        async with sc.sessions() as session:
            before = await outbox_queries.messages_for_commit(
                session, repository_id=await repo.repository_id(), commit_sha=code
            )
        await repo.pull_request(code, base, "pr-edited", action="edited")
        async with sc.sessions() as session:
            after = await outbox_queries.messages_for_commit(
                session, repository_id=await repo.repository_id(), commit_sha=code
            )
        assert len(after) == len(before)


async def test_the_run_page_shows_the_verdict_and_the_api_no_badge_token(
    tmp_path, database_url, redis_url
):
    git, _ = repo_with(tmp_path, {".labci/train.yml": TRAIN})
    settings = test_settings(database_url, redis_url)
    async with server_context(settings) as sc:
        repo = Repo(sc, git)
        await repo.main_history()
        base = git.commit({"model.py": "base\n"})
        head = git.commit({"model.py": "worse\n"}, branch="feature")
        pushed = await repo.push(base, "push-base")
        await repo.finish((await repo.jobs(pushed))["fit"], {"acc": 0.912, "loss": 0.231})
        pr = await repo.pull_request(head, base, "pr-1")
        job = (await repo.jobs(pr))["fit"]
        await repo.finish(job, {"acc": 0.85, "loss": 0.25})
        assert await ensure_badge_token(sc.sessions, str(git.bare))
        auth = bearer(await admin_token(sc.sessions))
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://labci.test", headers=auth
            ) as c:
                page = (await c.get(f"/runs/{job.run_id}")).text
                detail = (await c.get(f"/api/v1/runs/{job.run_id}")).json()
    soup = BeautifulSoup(page, "html.parser")
    section = soup.select_one('section.verdict[data-context="labci/train/fit"]')
    assert section.h2.get_text(" ", strip=True) == "labci/train/fit failure"
    assert f"Baseline: base commit {base[:7]}" in section.get_text()
    acc = section.select_one("table.verdict tr.regressed")
    assert [td.get_text() for td in acc.find_all("td")][:3] == ["acc ↑", "0.912", "0.85"]
    assert "regressed" in [td.get_text() for td in acc.find_all("td")]
    assert "noise from 4 base-branch results" in section.get_text()
    compare = section.find("a", string="compare with the baseline run")
    assert compare["href"].endswith(f"/compare?with={job.run_id}")
    (verdict,) = [v for v in detail["verdicts"] if v["context"] == "labci/train/fit"]
    assert verdict["state"] == "failure"
    assert verdict["metrics"][0]["name"] == "acc"
    assert "badge_token" not in detail["repository"]
