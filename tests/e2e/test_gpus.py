"""GPU pinning through the whole loop, with an injected inventory (LABCI_RUNNER_GPUS): the
machines this runs on have no GPU, so what is checked is the assignment and the pinning,
and the job's record of it."""

from __future__ import annotations

import json

import httpx

from forge_standin import create_bare_repo, push_payload

GPU_JOBS = """\
name: gpus
on: push
jobs:
  first:
    runs-on: gpu
    resources: {gpus: 1}
    steps: [{run: 'echo "cuda=[$CUDA_VISIBLE_DEVICES] nvidia=[$NVIDIA_VISIBLE_DEVICES]"; sleep 1'}]
  second:
    runs-on: gpu
    resources: {gpus: 1}
    steps: [{run: 'echo "cuda=[$CUDA_VISIBLE_DEVICES] nvidia=[$NVIDIA_VISIBLE_DEVICES]"; sleep 1'}]
  cpu:
    runs-on: gpu
    steps: [{run: 'echo "cuda=[$CUDA_VISIBLE_DEVICES] nvidia=[$NVIDIA_VISIBLE_DEVICES]"'}]
"""
INVENTORY = [
    {"id": "0", "model": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920},
    {"id": "1", "model": "NVIDIA A100-SXM4-80GB", "memory_mib": 81920},
]


def test_jobs_are_pinned_to_the_gpus_the_scheduler_assigned(stack, github):
    stack.extra_env["LABCI_RUNNER_GPUS"] = json.dumps(INVENTORY)
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/gpus.yml": GPU_JOBS})
    stack.start_server()
    stack.start_worker()
    stack.start_runner("runner0", labels="gpu", slots=3)
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-gpus")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    jobs = {j["job"]["job_key"]: j for j in run["jobs"]}
    seen = {}
    for key, job in jobs.items():
        assert job["job"]["state"] == "success"
        (line,) = [x["text"] for x in job["logs"] if x["stream"] == "stdout"]
        seen[key] = line
    assert sorted([seen["first"], seen["second"]]) == [
        "cuda=[0] nvidia=[0]",
        "cuda=[1] nvidia=[1]",
    ]
    assert seen["cpu"] == "cuda=[] nvidia=[void]"
    first = jobs["first"]["job"]
    assert first["record"]["gpus"] == [
        {
            "id": first["gpu_ids"][0],
            "model": "NVIDIA A100-SXM4-80GB",
            "memory_mib": 81920,
            "uuid": None,
        }
    ]
    assert first["record"]["executor"] == "process"
    assert first["record"]["commit"] == sha

    page = httpx.get(f"{stack.url}/runs/{run['run']['id']}", timeout=10).text
    assert "<summary>Reproducibility record</summary>" in page
    assert "NVIDIA A100-SXM4-80GB 80 GB (gpu " in page  # the record in words
