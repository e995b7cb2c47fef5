"""The docker executor on a real engine, with images built on the machine.

Every test counts the containers labelled for its runner afterwards: none may remain,
whatever happened (success, failure, timeout, cancellation, a missing image).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import docker
import pytest
from runner_kit import JobDirs, Recorder, make_context, make_job

from labci_runner.errors import ExecutorError
from labci_runner.executors.container_config import LABEL_PREFIX, ContainerDefaults
from labci_runner.executors.docker import DockerExecutor, DockerSettings, remove_leftovers
from labci_runner.executors.engine import DockerEngine
from labci_runner.logs import LogSink
from labci_runner.metrics import read_metrics


@pytest.fixture
def runner_name() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def engine(docker_host: str) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=docker_host)
    yield client
    client.close()


@pytest.fixture
def leftovers(engine: docker.DockerClient, runner_name: str) -> Iterator[None]:
    """After the test: no container of this runner exists any more."""
    yield
    label = f"{LABEL_PREFIX}runner={runner_name}"
    assert engine.containers.list(all=True, filters={"label": label}) == []


def executor(
    docker_host: str, runner_name: str, *, grace_s: float = 2.0, **defaults: object
) -> DockerExecutor:
    return DockerExecutor(
        DockerEngine(docker_host),
        DockerSettings(
            runner_name=runner_name,
            grace_s=grace_s,
            pull_policy="never",
            defaults=ContainerDefaults(**defaults),  # type: ignore[arg-type]
        ),
    )


def container_job(*steps, image: str, **extra):
    return make_job(*steps, container={"image": image}, **extra)


SERVER_ENV = {"LABCI_JOB_ID": "7", "LABCI_ATTEMPT": "1"}


async def run(ex: DockerExecutor, job, dirs: JobDirs, sink: LogSink, recorder: Recorder, **kw):
    ctx = make_context(dirs, sink, recorder, server_env=SERVER_ENV, **kw)
    outcome = await ex.run(job, ctx)
    await sink.close()
    return outcome


@pytest.mark.usefixtures("leftovers")
async def test_steps_share_a_container_and_write_metrics_as_a_non_root_user(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    job = container_job(
        "echo hello; echo oops >&2; printf '\\033[31mred\\033[0m\\n'",
        "id -u; echo state > /tmp/carried",
        "cat /tmp/carried; pwd",
        'echo \'{"accuracy": 0.91}\' > "$LABCI_OUTPUT/metrics.json"',
        image=test_images.busybox,
    )
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert (outcome.outcome, outcome.reason) == ("success", None)
    assert recorder.texts("stdout") == [
        "hello",
        "\x1b[31mred\x1b[0m",
        "1000",
        "state",
        "/labci/workspace",
    ]
    assert recorder.texts("stderr") == ["oops"]
    assert await read_metrics(job_dirs.output, "metrics.json") == {"accuracy": 0.91}


@pytest.mark.usefixtures("leftovers")
async def test_no_network_by_default(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    # Loopback Redis answers on the host; from the container it must not.
    job = container_job(
        "nc -w 2 127.0.0.1 6379 </dev/null && echo reached", image=test_images.busybox
    )
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "failure"
    assert "reached" not in recorder.texts("stdout")


@pytest.mark.usefixtures("leftovers")
async def test_a_memory_hog_is_reported_out_of_memory(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    job = container_job(
        {"name": "hog", "run": 'awk "BEGIN{s=\\"xxxxxxxx\\"; while (1) s = s s}"'},
        image=test_images.busybox,
        resources={"memory": "48M"},
    )
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "failure"
    assert outcome.reason == "step 1 (hog) ran out of memory (limit 48 MiB)"


@pytest.mark.usefixtures("leftovers")
async def test_timeout_sends_int_term_kill_and_removes_the_container(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    script = "trap '' INT TERM; echo started; while :; do sleep 1; done"
    job = container_job(script, "echo never", image=test_images.busybox)
    outcome = await asyncio.wait_for(
        run(
            executor(docker_host, runner_name, grace_s=0.5),
            job,
            job_dirs,
            sink,
            recorder,
            timeout_s=2.0,
        ),
        60,
    )
    assert (outcome.outcome, outcome.reason) == ("timed_out", "timed out after 2 s")
    system = recorder.texts("system")
    assert [t for t in system if t.startswith("sending")] == [
        "sending SIGINT to the step",
        "sending SIGTERM to the step",
        "sending SIGKILL to the step",
    ]
    assert recorder.final_statuses() == ["failure", "skipped"]


@pytest.mark.usefixtures("leftovers")
async def test_cancellation_stops_the_step_and_reraises(
    docker_host, test_images, runner_name, job_dirs, recorder
):
    recorder.wait_for_text = "ready"
    job = container_job("echo ready; sleep 300", "echo never", image=test_images.busybox)
    async with LogSink(recorder.send, flush_interval_s=0.01) as sink:
        ctx = make_context(job_dirs, sink, recorder, server_env=SERVER_ENV)
        task = asyncio.create_task(executor(docker_host, runner_name).run(job, ctx))
        await asyncio.wait_for(recorder.seen.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert recorder.final_statuses() == ["failure", "skipped"]
    assert "sending SIGINT to the step" in recorder.texts("system")


@pytest.mark.usefixtures("leftovers")
async def test_missing_image_names_the_image(docker_host, runner_name, job_dirs, sink, recorder):
    job = container_job("true", image="labci-test/does-not-exist:1")
    with pytest.raises(ExecutorError) as caught:
        await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert str(caught.value) == (
        "image labci-test/does-not-exist:1 is not on this runner (pull policy: never)"
    )


@pytest.mark.usefixtures("leftovers")
async def test_long_lines_are_cut_and_huge_output_does_not_pile_up(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    job = container_job(
        "head -c 200000 /dev/zero | tr '\\0' x; echo; echo after", image=test_images.busybox
    )
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    first, second = recorder.texts("stdout")
    assert first == "x" * (64 * 1024) + " …[line truncated]"
    assert second == "after"


async def test_a_progress_bar_redrawn_past_the_cap_keeps_its_final_state(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    """The same splitting as the process executor's: ~150 KB of `\r` redrawing, one line."""
    bar = 'i=0; while [ $i -le 5000 ]; do printf "\\r%5d/5000 |#####|" $i; i=$((i+1)); done'
    job = container_job(bar + "; echo; echo after", image=test_images.busybox)
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    drawn, after = recorder.texts("stdout")
    assert drawn.endswith("\r 5000/5000 |#####|")
    assert " …[line truncated]" not in drawn
    assert after == "after"


async def test_leftovers_of_a_crashed_runner_are_removed(
    docker_host, test_images, engine, runner_name
):
    labels = {f"{LABEL_PREFIX}runner": runner_name, f"{LABEL_PREFIX}job": "1"}
    engine.containers.create(test_images.busybox, ["sleep", "60"], labels=labels)
    engine.containers.create(
        test_images.busybox, ["sleep", "60"], labels={**labels, f"{LABEL_PREFIX}runner": "other"}
    )
    removed = remove_leftovers(engine, runner_name)
    assert len(removed) == 1
    label = f"{LABEL_PREFIX}runner={runner_name}"
    assert engine.containers.list(all=True, filters={"label": label}) == []
    remove_leftovers(engine, "other")


@pytest.mark.usefixtures("leftovers")
async def test_docker_inspect_shows_the_locked_down_container(
    docker_host, test_images, engine, runner_name, job_dirs, recorder
):
    """Reliability D8, on the engine's own record of a job's container."""
    recorder.wait_for_text = "ready"
    job = container_job("echo ready; sleep 5", image=test_images.root_only)
    async with LogSink(recorder.send, flush_interval_s=0.01) as sink:
        ctx = make_context(job_dirs, sink, recorder, server_env=SERVER_ENV)
        task = asyncio.create_task(executor(docker_host, runner_name).run(job, ctx))
        await asyncio.wait_for(recorder.seen.wait(), 30)
        label = f"{LABEL_PREFIX}runner={runner_name}"
        (container,) = engine.containers.list(filters={"label": label})
        host = container.attrs["HostConfig"]
        config = container.attrs["Config"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 4096
    assert host["Memory"] == host["MemorySwap"] == 4 * 1024**3
    assert host["NanoCpus"] == 2_000_000_000
    assert config["User"] == "1000:1000"  # also in an image whose only user is root
    assert "NVIDIA_VISIBLE_DEVICES=void" in config["Env"]
    sources = [m["Source"] for m in container.attrs["Mounts"]]
    assert all(s.startswith(str(job_dirs.workspace.parent)) for s in sources)
    assert not any("docker.sock" in s for s in sources)


async def test_an_unreachable_engine_fails_the_job_and_is_reported(
    docker_host, tmp_path, job_dirs, sink, recorder
):
    """Reliability B13: the job errors with the reason; the runner stops offering containers."""
    from labci_runner.executors.choice import ExecutorChoice

    gone = DockerEngine(f"unix://{tmp_path / 'docker.sock'}")
    ex = DockerExecutor(gone, DockerSettings(runner_name="r", pull_policy="never"))
    job = container_job("true", image="labci-test/busybox:1")
    with pytest.raises(ExecutorError, match="^docker engine unreachable$"):
        await run(ex, job, job_dirs, sink, recorder)
    down = ExecutorChoice(process=None, docker_executor=ex, containers_only=False)
    assert (await down.capabilities()).as_json() == {
        "host": False,
        "container": False,
        "untrusted": False,
    }
    live = DockerExecutor(DockerEngine(docker_host), DockerSettings(runner_name="r"))
    up = ExecutorChoice(process=None, docker_executor=live, containers_only=False)
    assert (await up.capabilities()).as_json() == {
        "host": False,
        "container": True,
        "untrusted": False,
    }
    # Only a runner whose every job runs in a container takes a fork's jobs, and only while
    # its engine answers.
    boxed = ExecutorChoice(process=None, docker_executor=live, containers_only=True)
    assert (await boxed.capabilities()).untrusted is True
    boxed_down = ExecutorChoice(process=None, docker_executor=ex, containers_only=True)
    assert (await boxed_down.capabilities()).untrusted is False


@pytest.mark.usefixtures("leftovers")
async def test_hostile_steps_hit_the_walls_and_the_job_goes_on(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    """Reliability D9, step by step (each with continue-on-error, so all of them run)."""
    tried = [
        ("fork bomb", "i=0; while [ $i -lt 300 ]; do sleep 60 & i=$((i+1)); done; echo all-forked"),
        ("write /", "touch /evil && echo wrote-root"),
        ("mount", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted"),
        # Docker allows unprivileged ICMP echo sockets; a raw (packet) socket is what is refused.
        ("raw socket", "arping -c 1 -I lo 127.0.0.1 && echo raw-sent"),
        ("loopback postgres", "nc -w 2 127.0.0.1 5432 </dev/null && echo reached-pg"),
    ]
    steps = [{"name": n, "run": r, "continue-on-error": True} for n, r in tried]
    job = container_job(*steps, "echo survived", image=test_images.busybox)
    ex = executor(docker_host, runner_name, pids_limit=64)
    outcome = await run(ex, job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    assert recorder.final_statuses() == ["failure"] * len(tried) + ["success"]
    out = recorder.texts("stdout")
    assert out == ["survived"]  # none of all-forked, wrote-root, mounted, raw-sent, reached-pg
    err = "\n".join(recorder.texts("stderr"))
    assert "can't fork" in err or "Resource temporarily unavailable" in err
    assert "Read-only file system" in err
    assert "arping: socket: Operation not permitted" in err


@pytest.mark.usefixtures("leftovers")
async def test_runner_credentials_never_reach_the_container(
    docker_host, test_images, runner_name, job_dirs, sink, recorder, monkeypatch
):
    """The container's environment is built from the job's, never the runner's (D11)."""
    monkeypatch.setenv("LABCI_RUNNER_TOKEN", "labcirun_must_not_leak")
    monkeypatch.setenv("LABCI_REDIS_URL", "redis://:secret@127.0.0.1:6379/0")
    job = container_job("env | sort", image=test_images.busybox)
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    names = {line.split("=", 1)[0] for line in recorder.texts("stdout")}
    assert {"LABCI_JOB_ID", "LABCI_OUTPUT", "LABCI_WORKSPACE", "CI", "HOME"} <= names
    assert not {"LABCI_RUNNER_TOKEN", "LABCI_REDIS_URL", "DOCKER_HOST"} & names
    assert "labcirun_must_not_leak" not in "\n".join(recorder.texts())


@pytest.mark.usefixtures("leftovers")
async def test_a_failed_pull_names_the_image(docker_host, runner_name, job_dirs, sink, recorder):
    ex = DockerExecutor(
        DockerEngine(docker_host),
        DockerSettings(runner_name=runner_name, pull_policy="if-not-present"),
    )
    job = container_job("true", image="registry.invalid/lab/missing:1")
    with pytest.raises(ExecutorError) as caught:
        await run(ex, job, job_dirs, sink, recorder)
    assert str(caught.value).startswith("image registry.invalid/lab/missing:1 cannot be pulled: ")


@pytest.mark.usefixtures("leftovers")
async def test_a_line_written_in_pieces_arrives_whole(
    docker_host, test_images, runner_name, job_dirs, sink, recorder
):
    # The pauses make separate frames likely; test_lines.py covers every split point.
    job = container_job(
        "printf first-; sleep 0.2; echo half; printf err- >&2; sleep 0.2; echo part >&2",
        image=test_images.busybox,
    )
    outcome = await run(executor(docker_host, runner_name), job, job_dirs, sink, recorder)
    assert outcome.outcome == "success"
    assert (recorder.texts("stdout"), recorder.texts("stderr")) == (["first-half"], ["err-part"])


async def test_a_process_runner_refuses_a_forks_job_it_is_sent(
    docker_host, test_images, job_dirs, sink, recorder
):
    """D13 on the runner's side too: a job marked untrusted never starts on the host, even
    if a scheduler sent it here; a containers-only runner runs it."""
    from dataclasses import replace

    from labci_runner.executors.choice import ExecutorChoice
    from labci_runner.executors.process import ProcessExecutor

    ctx = replace(make_context(job_dirs, sink, recorder, server_env=SERVER_ENV), trusted=False)
    marker = job_dirs.workspace / "ran"
    job = make_job(f"touch {marker}")
    live = DockerExecutor(DockerEngine(docker_host), DockerSettings(runner_name="r"))
    host = ExecutorChoice(
        process=ProcessExecutor(base_env={}), docker_executor=live, containers_only=False
    )
    with pytest.raises(ExecutorError, match="a fork's code, which runs only on runners"):
        await host.run(job, ctx)
    assert not marker.exists()
    boxed = ExecutorChoice(process=None, docker_executor=live, containers_only=True)
    boxed_job = container_job("echo in a box", image="labci-test/busybox:1")
    outcome = await boxed.run(boxed_job, ctx)
    await sink.close()
    assert outcome.outcome == "success"
