"""Artifacts through the whole loop, and reliability D10: links planted by a step (to the
runner's own credentials, to a host directory, a metrics file linked to a host file) are
refused with "path escapes workspace"; host bytes never leave the runner."""

from __future__ import annotations

import json

import httpx

from forge_standin import create_bare_repo, push_payload

KEEP = """\
name: keep
on: push
jobs:
  plot:
    runs-on: cpu
    steps:
      - run: |
          mkdir -p "$LABCI_OUTPUT/plots/deep"
          printf 'PNG-bytes' > "$LABCI_OUTPUT/plots/loss.png"
          printf 'nested' > "$LABCI_OUTPUT/plots/deep/acc.png"
          ln -s ../../../../runner.json "$LABCI_OUTPUT/plots/token.png"
          ln -s /etc "$LABCI_OUTPUT/plots/etc"
          ln -s /etc/hostname "$LABCI_OUTPUT/metrics.json"
    metrics: {file: metrics.json}
    artifacts: ["plots/**"]
"""


def test_artifacts_are_kept_and_links_out_are_refused(stack, github):
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/keep.yml": KEEP})
    stack.start_all()
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-keep")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    (job,) = run["jobs"]
    assert job["job"]["state"] == "error"
    assert job["job"]["reason"] == "metrics invalid: metrics.json: path escapes workspace"
    assert [(a["path"], a["size_bytes"]) for a in job["artifacts"]] == [
        ("plots/deep/acc.png", 6),
        ("plots/loss.png", 9),
    ]
    texts = [line["text"] for line in job["logs"]]
    assert "artifact plots/token.png: path escapes workspace" in texts
    assert "artifact plots/etc/: path escapes workspace (a link to a directory)" in texts
    assert "kept 2 artifact(s), 15 bytes" in texts

    loss = next(a for a in job["artifacts"] if a["path"] == "plots/loss.png")
    download = httpx.get(stack.url + loss["url"], timeout=10)
    assert download.content == b"PNG-bytes"
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in download.headers["content-disposition"]
    gone = httpx.get(f"{stack.url}/api/v1/jobs/{job['job']['id']}/artifacts/plots/token.png")
    assert gone.status_code == 404

    token = json.loads((stack.root / "runner0" / "runner.json").read_text())["runner_token"]
    assert token not in json.dumps(run)
    page = httpx.get(f"{stack.url}/runs/{run['run']['id']}", timeout=10).text
    assert token not in page
