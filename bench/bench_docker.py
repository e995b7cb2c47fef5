"""Benchmark of the docker executor's added cost (issue: containerized checks).

A job of one step running `true`, through `DockerExecutor.run` (image check, create,
start, `docker exec` of the step, output read, container removed), against
`docker run --rm --network none <image> true` with the docker CLI, in the same run and
interleaved, N times each after warm-up; medians and their ratio. Target: ≤ 1.5×.

Needs a Docker engine: LABCI_TEST_DOCKER_HOST (or DOCKER_HOST); `bash
scripts/docker-engine.sh` starts one. Run: `uv run python bench/bench_docker.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import docker  # noqa: E402

from helpers.images import build_test_images  # noqa: E402
from labci_runner.executors.base import ExecutionContext, StepResult  # noqa: E402
from labci_runner.executors.docker import DockerExecutor, DockerSettings  # noqa: E402
from labci_runner.executors.engine import DockerEngine  # noqa: E402
from labci_runner.logs import LogSink  # noqa: E402
from labci_spec import Job, JobInstance  # noqa: E402


def engine_url() -> str:
    url = os.environ.get("LABCI_TEST_DOCKER_HOST") or os.environ.get("DOCKER_HOST")
    if not url:
        raise SystemExit("set LABCI_TEST_DOCKER_HOST (bash scripts/docker-engine.sh starts one)")
    return url


def instance(image: str) -> JobInstance:
    job = Job.model_validate(
        {
            "id": "bench",
            "runs-on": ["cpu"],
            "container": {"image": image},
            "steps": [{"run": "true"}],
        }
    )
    return JobInstance(workflow="bench", job_id="bench", key="bench", group="bench", job=job)


async def labci_once(executor: DockerExecutor, job: JobInstance, root: Path) -> float:
    dirs = [root / name for name in ("src", "output", "scratch")]
    for folder in dirs:
        folder.mkdir(parents=True)

    async def discard(_lines: list[dict[str, Any]]) -> None:
        return None

    async def report(_result: StepResult) -> None:
        return None

    started = time.perf_counter()
    async with LogSink(discard) as sink:
        ctx = ExecutionContext(
            workspace=dirs[0],
            output_dir=dirs[1],
            scratch_dir=dirs[2],
            server_env={"LABCI_JOB_ID": "1", "LABCI_ATTEMPT": "1"},
            timeout_s=60,
            logs=sink,
            report_step=report,
        )
        outcome = await executor.run(job, ctx)
    elapsed = time.perf_counter() - started
    if outcome.outcome != "success":
        raise SystemExit(f"the benchmark job failed: {outcome.reason}")
    shutil.rmtree(root)
    return elapsed


def cli_once(docker_cli: str, url: str, image: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [docker_cli, "run", "--rm", "--network", "none", image, "true"],
        env={**os.environ, "DOCKER_HOST": url},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    url = engine_url()
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        raise SystemExit("the docker CLI is needed for the baseline")
    client = docker.DockerClient(base_url=url, version="1.41")
    image = build_test_images(client).busybox
    client.close()
    executor = DockerExecutor(
        DockerEngine(url), DockerSettings(runner_name="bench", pull_policy="never")
    )
    job = instance(image)
    labci, cli = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.warmup + args.runs):
            took_labci = await labci_once(executor, job, Path(tmp) / f"job-{n}")
            took_cli = cli_once(docker_cli, url, image)
            if n >= args.warmup:
                labci.append(took_labci * 1000)
                cli.append(took_cli * 1000)
            print(
                f"  run {n + 1}: labci {took_labci * 1000:.0f} ms, docker run {took_cli * 1000:.0f} ms"
            )
    result = {
        "runs": args.runs,
        "labci_job_ms_median": round(statistics.median(labci), 1),
        "docker_run_ms_median": round(statistics.median(cli), 1),
    }
    result["ratio"] = round(result["labci_job_ms_median"] / result["docker_run_ms_median"], 2)
    print(json.dumps(result, indent=2))
    print(
        f"docker executor: job running `true` {result['labci_job_ms_median']} ms vs "
        f"`docker run --rm` {result['docker_run_ms_median']} ms → {result['ratio']}× (target ≤ 1.5×)"
    )


if __name__ == "__main__":
    asyncio.run(main())
