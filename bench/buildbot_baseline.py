"""The Buildbot baseline of bench_loop.py: the same push webhook, the same first step.

Buildbot (pinned, as measured in issue 14) is installed into a throwaway virtualenv under
the cache directory, never into labci's locked environment. Its master is set up to
start a build as soon as it can: the GitHub change hook, a SingleBranchScheduler with
`treeStableTimer=None` (no waiting for the tree to settle), one local worker connected
over PB (push, no polling), SQLite like labci's side of the benchmark, and a builder whose
first and only step runs the same command as labci's job. Buildbot pings the worker before
each build (a PB round trip); nothing else waits on a timer between the webhook and the
step.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from forge_standin import headers, push_payload
from helpers.services import free_port

BUILDBOT_VERSION = "4.3.0"
PACKAGES = [
    f"{name}=={BUILDBOT_VERSION}" for name in ("buildbot", "buildbot-worker", "buildbot-www")
]
SECRET = "bench-buildbot-secret"
WORKER_PASSWORD = "bench-pass"

MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
c["workers"] = [worker.Worker("bench-worker", {password!r})]
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["change_source"] = []
c["schedulers"] = [
    schedulers.SingleBranchScheduler(
        name="push",
        change_filter=util.ChangeFilter(branch="main"),
        treeStableTimer=None,
        builderNames=["bench"],
    )
]
factory = util.BuildFactory()
factory.addStep(
    steps.ShellCommand(
        name="stamp",
        command=["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                 util.Interpolate({script!r})],
    )
)
c["builders"] = [util.BuilderConfig(name="bench", workernames=["bench-worker"], factory=factory)]
c["www"] = {{
    "port": "tcp:{www_port}:interface=127.0.0.1",
    "change_hook_dialects": {{"github": {{"secret": {secret!r}, "strict": True}}}},
    "plugins": {{}},
}}
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
c["buildbotURL"] = "http://127.0.0.1:{www_port}/"
c["buildbotNetUsageData"] = None
c["title"] = "labci bench baseline"
"""


def buildbot_venv(cache_dir: Path) -> Path:
    """The virtualenv's bin directory, created and filled on first use.

    Exits with a clear message when Buildbot cannot be installed: the benchmark has no
    meaning without its baseline."""
    venv = cache_dir / f"buildbot-{BUILDBOT_VERSION}"
    bin_dir = venv / "bin"
    if (bin_dir / "buildbot").exists() and (bin_dir / "buildbot-worker").exists():
        return bin_dir
    print(f"installing Buildbot {BUILDBOT_VERSION} into {venv} …", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"cannot install the Buildbot baseline ({' '.join(PACKAGES)}) into {venv}: {exc}; "
            "the benchmark needs it (or pass --no-buildbot to measure labci alone)"
        ) from exc
    return bin_dir


@dataclass
class Buildbot:
    url: str
    stamps: Path
    http: httpx.Client  # shared with labci's deliveries: a kept-alive connection each

    def deliver_push(self, clone_url: str, sha: str, i: int) -> float:
        """Send a push of `sha`; returns the time it was sent (time.time())."""
        payload = push_payload("bench", "loop", clone_url, "refs/heads/main", "0" * 40, sha)
        body = json.dumps(payload).encode()
        signed = headers("push", f"buildbot-{i}", body, SECRET)
        sent = time.time()
        answer = self.http.post(self.url + "/change_hook/github", content=body, headers=signed)
        if answer.status_code != 200 or "1 change" not in answer.text:
            raise SystemExit(f"Buildbot refused the push: {answer.status_code} {answer.text[:200]}")
        return sent

    def wait_built(self, number: int, timeout_s: float = 60) -> dict[str, object]:
        """Wait until build `number` of the builder is complete; its API record."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            builds = httpx.get(
                f"{self.url}/api/v2/builders/bench/builds",
                params={"order": "-number", "limit": "1"},
                timeout=10,
            ).json()["builds"]
            if builds and builds[0]["number"] >= number and builds[0]["complete"]:
                if builds[0]["results"] != 0:
                    raise SystemExit(f"Buildbot build {number} failed: {builds[0]}")
                return dict(builds[0])
            time.sleep(0.05)
        raise SystemExit(f"Buildbot build {number} did not finish in {timeout_s:.0f} s")

    def worker_connected(self) -> bool:
        try:
            workers = httpx.get(self.url + "/api/v2/workers", timeout=2).json()["workers"]
        except (httpx.TransportError, ValueError):
            return False
        return bool(workers and workers[0]["connected_to"])


@contextlib.contextmanager
def buildbot_running(
    bin_dir: Path, root: Path, stamps: Path, http: httpx.Client
) -> Iterator[tuple[Buildbot, dict]]:
    """A master and its worker, each a process of its own; yields the master's handle
    and the processes (name → Popen) for the idle CPU reading."""
    master_dir, worker_dir = root / "master", root / "worker"
    pb_port, www_port = free_port(), free_port()
    # Interpolate: `%%` is a literal `%`.
    script = f"date +%%s.%%N > {stamps}/buildbot-%(prop:revision)s"
    run = {"check": True, "capture_output": True}
    subprocess.run([str(bin_dir / "buildbot"), "create-master", "-q", str(master_dir)], **run)
    (master_dir / "master.cfg").write_text(
        MASTER_CFG.format(
            password=WORKER_PASSWORD,
            pb_port=pb_port,
            www_port=www_port,
            secret=SECRET,
            script=script,
        )
    )
    subprocess.run(
        [str(bin_dir / "buildbot-worker"), "create-worker", "-q", str(worker_dir),
         f"127.0.0.1:{pb_port}", "bench-worker", WORKER_PASSWORD],
        **run,
    )  # fmt: skip
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in (
            ("buildbot master", [str(bin_dir / "buildbot"), "start", "--nodaemon", str(master_dir)]),
            ("buildbot worker", [str(bin_dir / "buildbot-worker"), "start", "--nodaemon", str(worker_dir)]),
        ):  # fmt: skip
            with open(root / f"{name.split()[1]}.out", "ab") as out:
                procs[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        buildbot = Buildbot(f"http://127.0.0.1:{www_port}", stamps, http)
        deadline = time.monotonic() + 120
        while not buildbot.worker_connected():
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                log = (master_dir / "twistd.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"Buildbot did not come up; its log ends:\n{log}")
            time.sleep(0.2)
        yield buildbot, procs
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
