"""Step semantics of the workflow format, run as real processes by the process executor."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from runner_kit import JobDirs, Recorder, make_context, make_job

from labci_runner.executors.process import ProcessExecutor
from labci_runner.logs import LogSink
from labci_runner.metrics import MetricLines

BASE_ENV = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}


def executor() -> ProcessExecutor:
    return ProcessExecutor(base_env=BASE_ENV, grace_s=0.5)


async def run(job, dirs: JobDirs, sink: LogSink, recorder: Recorder, **ctx_args):
    outcome = await executor().run(job, make_context(dirs, sink, recorder, **ctx_args))
    await sink.close()
    return outcome


@pytest.mark.parametrize(
    ("steps", "expected_statuses", "outcome"),
    [
        (
            ["false", {"run": "echo cleanup", "if": "always()"}, "echo never"],
            ["failure", "success", "skipped"],
            "failure",
        ),
        (
            ["false", {"run": "echo on failure", "if": "${{ failure() }}"}],
            ["failure", "success"],
            "failure",
        ),
        (
            ["true", {"run": "echo on failure", "if": "failure()"}, "echo next"],
            ["success", "skipped", "success"],
            "success",
        ),
        (
            [{"run": "exit 4", "continue-on-error": True}, "echo after"],
            ["failure", "success"],
            "success",
        ),
        (
            [
                {"run": "echo x", "if": "matrix.seed == 1"},
                {"run": "echo y", "if": "matrix.seed == 2"},
            ],
            ["success", "skipped"],
            "success",
        ),
        (
            [{"run": "echo x", "if": "github.event_name == 'push' && github.ref_name == 'main'"}],
            ["success"],
            "success",
        ),
    ],
    ids=[
        "always-runs-after-failure",
        "failure-runs-after-failure",
        "failure-skipped-after-success",
        "continue-on-error",
        "matrix-condition",
        "github-condition",
    ],
)
async def test_step_conditions_and_continue_on_error(
    job_dirs: JobDirs,
    sink: LogSink,
    recorder: Recorder,
    steps: list,
    expected_statuses: list[str],
    outcome: str,
) -> None:
    job = make_job(*steps, matrix={"seed": 1})
    result = await run(
        job, job_dirs, sink, recorder, github={"event_name": "push", "ref_name": "main"}
    )
    assert recorder.final_statuses() == expected_statuses
    assert result.outcome == outcome


async def test_continue_on_error_says_so_in_the_log(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job({"run": "exit 4", "continue-on-error": True, "name": "flaky"})
    outcome = await run(job, job_dirs, sink, recorder)
    assert (outcome.outcome, outcome.reason) == ("success", None)
    assert "step 1 (flaky) exited with 4; continuing (continue-on-error)" in recorder.texts(
        "system"
    )


async def test_step_timeout_fails_the_job_as_timed_out(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job({"run": "sleep 300", "name": "slow", "timeout-minutes": 1}, "echo never")
    # A one-minute step timeout, scaled down: the plan carries seconds.
    import labci_runner.steps as steps_module

    original = steps_module.plan_step

    def fast(*args, **kwargs):
        plan = original(*args, **kwargs)
        return type(plan)(**{**plan.__dict__, "timeout_s": 0.5 if plan.timeout_s else None})

    monkeypatch.setattr(steps_module, "plan_step", fast)
    outcome = await asyncio.wait_for(run(job, job_dirs, sink, recorder), 20)
    assert outcome.outcome == "timed_out"
    assert outcome.reason == "step 1 (slow) timed out after 0.5 s"
    assert recorder.final_statuses() == ["failure", "skipped"]


async def test_step_timeout_with_continue_on_error_goes_on(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labci_runner.steps as steps_module

    original = steps_module.plan_step

    def fast(*args, **kwargs):
        plan = original(*args, **kwargs)
        return type(plan)(**{**plan.__dict__, "timeout_s": 0.3 if plan.timeout_s else None})

    monkeypatch.setattr(steps_module, "plan_step", fast)
    job = make_job(
        {"run": "sleep 300", "timeout-minutes": 1, "continue-on-error": True}, "echo after"
    )
    outcome = await asyncio.wait_for(run(job, job_dirs, sink, recorder), 20)
    assert outcome.outcome == "success"
    assert recorder.final_statuses() == ["failure", "success"]
    assert "after" in recorder.texts("stdout")


@pytest.mark.parametrize(
    ("shell", "script", "expected"),
    [
        ("bash", "echo $BASH_VERSION | cut -c1", "5"),
        ("sh", "echo plain-sh", "plain-sh"),
        ("python", "import sys; print(sys.version_info[0])", "3"),
        ("bash -c 'echo custom from {0}' ", "ignored", "custom from"),
    ],
    ids=["bash", "sh", "python", "custom-template"],
)
async def test_shells(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder, shell: str, script: str, expected: str
) -> None:
    job = make_job({"run": script, "shell": shell})
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "success", recorder.texts()
    assert recorder.texts("stdout")[0].startswith(expected)


async def test_default_shell_from_job_defaults(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job("import os; print('py', os.getcwd())", defaults={"run": {"shell": "python"}})
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == [f"py {job_dirs.workspace}"]


async def test_working_directories(job_dirs: JobDirs, sink: LogSink, recorder: Recorder) -> None:
    (job_dirs.workspace / "sub" / "deeper").mkdir(parents=True)
    job = make_job(
        "pwd",
        {"run": "pwd", "working-directory": "sub/deeper"},
        defaults={"run": {"working-directory": "sub"}},
    )
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == [
        str(job_dirs.workspace / "sub"),
        str(job_dirs.workspace / "sub" / "deeper"),
    ]


@pytest.mark.parametrize(
    ("workdir", "setup", "message"),
    [
        ("missing", None, "working-directory 'missing' does not exist in the workspace"),
        ("link", "outside", "working-directory 'link' escapes the workspace"),
    ],
    ids=["missing", "symlink-escape"],
)
async def test_bad_working_directory_fails_the_step(
    job_dirs: JobDirs,
    sink: LogSink,
    recorder: Recorder,
    tmp_path: Path,
    workdir: str,
    setup: str | None,
    message: str,
) -> None:
    if setup:
        (tmp_path / setup).mkdir()
        (job_dirs.workspace / workdir).symlink_to(tmp_path / setup)
    job = make_job({"run": "touch escaped", "working-directory": workdir}, "echo never")
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "failure"
    assert outcome.reason == f"step 1 (touch escaped): {message}"
    assert recorder.final_statuses() == ["failure", "skipped"]
    assert not (tmp_path / "outside" / "escaped").exists()


async def test_expressions_are_rendered_with_matrix_env_and_secrets(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job(
        {
            "name": "seed ${{ matrix.seed }}",
            "run": 'echo "${{ matrix.seed }}|${{ env.LR }}|${{ secrets.MISSING }}|$OUT"',
            "env": {"OUT": "lr=${{ env.LR }}"},
        },
        env={"LR": "0.1"},
        matrix={"seed": 3},
    )
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == ["3|0.1||lr=0.1"]
    assert "▶ seed 3" in recorder.texts("system")


async def test_hostile_values_reach_the_step_as_data_only(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    """D6 as far as the runner goes: PR-controlled text arrives as environment variables,
    which the shell never interprets, whatever they contain."""
    hostile = 'a"; touch pwned #$(touch pwned2)`touch pwned3`'
    job = make_job('printf "%s\\n" "$LABCI_BRANCH"')
    outcome = await run(job, job_dirs, sink, recorder, server_env={"LABCI_BRANCH": hostile})
    assert outcome.outcome == "success"
    assert recorder.texts("stdout") == [hostile]
    assert not list(job_dirs.workspace.glob("pwned*"))


async def test_metric_lines_reach_the_collector(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    lines = MetricLines()
    job = make_job(
        "echo '::metric name=accuracy::0.5'; echo '::metric name=accuracy::0.91'",
        "echo '::metric name=eval/loss::0.25' >&2; echo '::metric name=loss::0.2'",
    )
    ctx = make_context(job_dirs, sink, recorder)
    ctx = type(ctx)(**{**ctx.__dict__, "on_stdout": lines.feed})
    outcome = await executor().run(job, ctx)
    await sink.close()
    assert outcome.outcome == "success"
    assert lines.metrics == {"accuracy": 0.91, "loss": 0.2}  # stderr is not read for metrics
    assert lines.error is None


async def test_a_shell_missing_on_the_runner_fails_the_step(
    job_dirs: JobDirs, sink: LogSink, recorder: Recorder
) -> None:
    job = make_job({"run": "x", "shell": "no-such-interpreter {0}"}, "echo never")
    outcome = await run(job, job_dirs, sink, recorder)
    assert outcome.outcome == "failure"
    assert outcome.reason == "step 1 (x): 'no-such-interpreter' is not installed on this runner"
    assert recorder.final_statuses() == ["failure", "skipped"]
