"""Reliability F3: a step writes 1 GiB to stdout. The runner's memory stays bounded, the
stored log is truncated at the cap with a marker, another job's log keeps flowing, and
the outcome is still reported."""

from __future__ import annotations

from pathlib import Path

from forge_standin import create_bare_repo, push_payload

FLOOD = """\
name: flood
on: push
jobs:
  flood:
    runs-on: cpu
    steps:
      - run: |
          line=$(head -c 999 /dev/zero | tr '\\0' x)
          { yes "$line" || true; } | head -c 1073741824  # yes ends on SIGPIPE
          echo "flood done" >&2
  steady:
    runs-on: cpu
    steps:
      - run: for i in $(seq 1 30); do echo "tick $i"; sleep 0.1; done
"""
CAP = 1024 * 1024
MAX_RSS_KIB = 200 * 1024


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_gigabyte_of_output_is_truncated_and_the_runner_stays_small(stack, github):
    stack.extra_env["LABCI_RUNNER_MAX_LOG_BYTES"] = str(CAP)
    repo = create_bare_repo(github.repos_root, "octo", "exp")
    sha = repo.commit({".labci/flood.yml": FLOOD})
    stack.start_all(runners=2)
    payload = push_payload("octo", "exp", repo.clone_url, "refs/heads/main", "0" * 39 + "1", sha)
    stack.deliver("push", payload, "push-flood")
    (run,) = stack.wait_for_runs_finished(sha, 1)
    peaks = {name: peak_rss_kib(stack.procs[name].pid) for name in ("runner0", "runner1")}
    print(f"peak RSS of the runners (KiB): {peaks}")
    assert max(peaks.values()) < MAX_RSS_KIB, peaks

    jobs = {j["job"]["job_key"]: j for j in run["jobs"]}
    flood, steady = jobs["flood"], jobs["steady"]
    assert (flood["job"]["state"], steady["job"]["state"]) == ("success", "success")
    out = [line for line in flood["logs"] if line["stream"] == "stdout"]
    assert CAP - 1000 <= sum(len(line["text"]) for line in out) <= CAP
    markers = [line["text"] for line in flood["logs"] if line["text"].startswith("log truncated")]
    assert markers == [
        f"log truncated: the steps wrote more than {CAP} bytes; later output was read and discarded"
    ]
    assert [line["seq"] for line in flood["logs"]] == list(range(len(flood["logs"])))
    ticks = [line["text"] for line in steady["logs"] if line["stream"] == "stdout"]
    assert ticks == [f"tick {i}" for i in range(1, 31)]
