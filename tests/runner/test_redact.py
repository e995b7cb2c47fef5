"""A job's secrets never leave the runner (D5): every printed form is masked with `***`.

The unit tests feed the redactor each form as the real encoder or program prints it. The
scenario tests run real steps (host processes, and a container on a real engine) through a
real `AttemptChannel`; the HTTP transport under it records what reaches the server, since
the server is not part of the runner's tests (style guide §7: only the edge is stood in).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import docker
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runner_kit import JobDirs, make_job

from helpers.gitrepo import make_repo
from helpers.services import missing_service
from labci_runner import client as client_module
from labci_runner.checkout import MirrorCache
from labci_runner.client import Assignment, ServerClient
from labci_runner.executors.base import ExecutionContext, Executor, JobOutcome, StepResult
from labci_runner.executors.container_config import LABEL_PREFIX
from labci_runner.executors.docker import DockerExecutor, DockerSettings
from labci_runner.executors.engine import DockerEngine
from labci_runner.executors.lines import TRUNCATED_MARK
from labci_runner.executors.process import ProcessExecutor
from labci_runner.jobs import JobRuntime, RunningJobs, execute_job
from labci_runner.logs import LogSink
from labci_runner.redact import MASK, Redactor
from labci_spec import JobInstance

HOST_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
# Quotes of both kinds, shell and HTML metacharacters, URL reserved characters, non-ASCII.
SECRET = 's3cr3t-Tok€n\'with "q" & <h>+/=?'
SECRET_BYTES = SECRET.encode()
# Control characters, a backslash and a quote (bash's `set -x` quotes it '…').
CONTROL_SECRET = "tab\there\x1besc\\back'q"
# Control characters and no shell metacharacter: bash's `set -x` prints it $'…'.
BARE_CONTROL_SECRET = "ctl\x1bsecret\x01end€"


def forms_of(secret: str) -> dict[str, str]:
    """How common tools print `secret`, each spelled by the tool itself."""
    data = secret.encode()
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "url": quote(secret, safe=""),
        "url-path": quote(secret),
        "url-plus": quote_plus(secret),
        "url-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")),
        "base64": base64.b64encode(data).decode(),
        "base64url": base64.urlsafe_b64encode(data).decode().rstrip("="),
        "hex": data.hex(),
        "html": html.escape(secret),
        "repr": repr(secret)[1:-1],
        "repr-bytes": repr(data)[2:-1],
    }


def masked_base64(prefix: bytes, suffix: bytes, encode: Any = base64.b64encode) -> str:
    """The encoding of the secret between `prefix` and `suffix` with only the characters
    that mix in the neighbouring bytes left around the mask."""
    encoded = encode(prefix + SECRET_BYTES + suffix).decode()
    first = -(-len(prefix) * 8 // 6)  # the first character made of the secret's bits only
    last = (len(prefix) + len(SECRET_BYTES)) * 8 // 6
    return encoded[:first] + MASK + encoded[last:]


def decodable_secret_bytes(text: str, secret: bytes = SECRET_BYTES, window: int = 3) -> list[bytes]:
    """Runs of `window` bytes of `secret` that base64-decoding any piece of `text` between
    masks, at any alignment, gives back (what someone reading the log could do)."""
    found = []
    windows = {secret[i : i + window] for i in range(len(secret) - window + 1)}
    for piece in text.split(MASK):
        for run in re.findall(r"[A-Za-z0-9+/_-]+", piece):
            for start in range(4):
                chunk = run[start:]
                chunk = chunk[: len(chunk) // 4 * 4].replace("-", "+").replace("_", "/")
                decoded = base64.b64decode(chunk) if chunk else b""
                found += [w for w in windows if w in decoded]
    return found


# ---- every form -------------------------------------------------------------------------


@pytest.mark.parametrize("form", forms_of(SECRET).items(), ids=lambda item: item[0])
def test_each_printed_form_is_masked(form: tuple[str, str]) -> None:
    _, printed = form
    redacted = Redactor([SECRET]).redact(f"token={printed}; done")
    assert redacted == "token=***; done"


@pytest.mark.parametrize("form", forms_of(CONTROL_SECRET).items(), ids=lambda item: item[0])
def test_each_printed_form_of_a_secret_with_control_characters_is_masked(
    form: tuple[str, str],
) -> None:
    _, printed = form
    assert Redactor([CONTROL_SECRET]).redact(f"[{printed}]") == "[***]"


@pytest.mark.parametrize(
    ("shell", "secret", "expected"),
    [
        (["bash", "-c"], SECRET, "+ : '***'"),
        (["bash", "-c"], CONTROL_SECRET, "+ : '***'"),
        (["bash", "-c"], BARE_CONTROL_SECRET, "+ : $'***'"),
        (["busybox", "sh", "-c"], SECRET, "+ : '***'"),
    ],
    ids=["bash-quote", "bash-control-quote", "bash-ansi-c", "busybox-quote"],
)
def test_set_x_output_is_masked(shell: list[str], secret: str, expected: str) -> None:
    if shutil.which(shell[0]) is None:
        missing_service(shell[0], f"{shell[0]} is not installed")
    done = subprocess.run(
        [*shell, 'set -x; : "$S"'],
        env={"S": secret, "LC_ALL": "C.UTF-8"},
        capture_output=True,
        check=True,
    )
    trace = done.stderr.decode().rstrip("\n")
    assert secret not in trace  # the shell quoted it: the raw form alone would not do
    assert Redactor([secret]).redact(trace) == expected


def test_a_traceback_shows_the_message_and_the_repr_masked() -> None:
    try:
        raise ValueError(f"bad token {SECRET} in {[SECRET]!r} and {SECRET.encode()!r}")
    except ValueError as exc:
        text = "".join(traceback.format_exception(exc))
    redacted = Redactor([SECRET]).redact(text)
    assert "ValueError: bad token *** in ['***'] and b'***'" in redacted
    assert SECRET not in redacted


@pytest.mark.parametrize("prefix", [b"", b"x", b"xx", b"xxx", b"\xff\xfe\xfd\xfc"])
@pytest.mark.parametrize("suffix", [b"", b"y", b"yy", b"yyy"])
def test_base64_of_the_secret_inside_longer_data_is_masked(prefix: bytes, suffix: bytes) -> None:
    redactor = Redactor([SECRET])
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        redacted = redactor.redact(encode(prefix + SECRET_BYTES + suffix).decode())
        assert redacted == masked_base64(prefix, suffix, encode)
        assert decodable_secret_bytes(redacted) == []


def test_a_multi_line_secret_is_masked_whole_and_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nAAAAbbbbCCCC\nab\n-----END KEY-----\n"
    redactor = Redactor([key])
    assert redactor.redact(f"key: {key!r}") == "key: '***'"
    assert [redactor.redact(line) for line in key.splitlines()] == ["***", "***", "ab", "***"]
    assert redactor.redact("  AAAAbbbbCCCC  ") == "  ***  "
    assert redactor.redact("ab cd") == "ab cd"  # a short line of the key is left alone


def test_short_values_are_ignored_so_logs_are_not_mangled() -> None:
    redactor = Redactor(["abc", "", "xy"])
    assert not redactor
    assert redactor.redact("abc xy abcabc") == "abc xy abcabc"
    assert Redactor(["abcd"]).redact("abcd abc") == "*** abc"


def test_overlapping_and_adjacent_matches_are_all_covered() -> None:
    redactor = Redactor(["abcdefgh", "efghijkl", "klmnopqr"])
    assert redactor.redact("__abcdefghijklmnopqr__") == "__***__"
    assert redactor.redact("abcdefghabcdefgh") == "***"
    # A value that overlaps itself.
    assert Redactor(["abab-abab"]).redact("abab-abab-abab!") == "***!"


def test_a_secret_cut_at_the_line_cap_leaves_no_prefix() -> None:
    redactor = Redactor([SECRET])
    cut = "x" * 20 + SECRET[:9] + TRUNCATED_MARK
    assert redactor.redact(cut) == "x" * 20 + "***" + TRUNCATED_MARK
    b64 = base64.b64encode(b"xx" + SECRET_BYTES).decode()
    assert decodable_secret_bytes(redactor.redact(b64[:20] + TRUNCATED_MARK)) == []
    # Cut inside "€": the decoder left U+FFFD after the fragment.
    euro = SECRET.index("€")
    assert redactor.redact(SECRET[:euro] + "\ufffd" + TRUNCATED_MARK).startswith("***")
    # Shorter than the minimum, or not at a cut: left as printed.
    assert redactor.redact("x s3c" + TRUNCATED_MARK) == "x s3c" + TRUNCATED_MARK
    assert redactor.redact("prefix s3cr3t-T only") == "prefix s3cr3t-T only"


def test_a_value_shortened_with_an_ellipsis_leaves_no_prefix() -> None:
    redactor = Redactor([SECRET])
    assert redactor.redact(f"is not a number (got {SECRET[:17] + '...'!r})") == (
        'is not a number (got "***...")'
    )
    assert redactor.redact(f"{SECRET[:12]}… more") == "***… more"
    assert redactor.redact("Loading... done…") == "Loading... done…"


def test_redact_json_masks_every_string_and_key() -> None:
    redactor = Redactor([SECRET])
    value = {
        "reason": f"failed: {SECRET}",
        "metrics": {f"acc.{SECRET}": 0.5, "loss": 1},
        "record": {"list": [SECRET, 3, None, True, {"k": json.dumps(SECRET)}]},
        7: SECRET,
    }
    assert redactor.redact_json(value) == {
        "reason": "failed: ***",
        "metrics": {"acc.***": 0.5, "loss": 1},
        "record": {"list": ["***", 3, None, True, {"k": '"***"'}]},
        7: "***",
    }


_TEXT = st.text(st.characters(blacklist_characters="*", blacklist_categories=["Cs"]))


@given(
    secret=_TEXT.filter(lambda s: len(s) >= 4),
    before=_TEXT,
    after=_TEXT,
)
def test_per_character_encodings_of_any_secret_are_masked(
    secret: str, before: str, after: str
) -> None:
    redactor = Redactor([secret])
    encoders = [
        lambda s: s,
        lambda s: json.dumps(s)[1:-1],
        lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
        lambda s: quote(s, safe=""),
        lambda s: quote_plus(s),
        lambda s: html.escape(s),
    ]
    for encode in encoders:
        redacted = redactor.redact(encode(before + secret + after))
        assert encode(secret) not in redacted
        assert MASK in redacted


# ---- what the channel sends ---------------------------------------------------------------


class Server:
    """The far end of the runner's HTTP calls: records each request and answers as the
    server does (a fetched job, artifacts kept, every report taken)."""

    def __init__(self, assignment: dict[str, Any] | None = None) -> None:
        self.assignment = assignment
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "GET":
            return httpx.Response(200, json=self.assignment)
        if request.method == "PUT":
            return httpx.Response(200, json={"size": len(request.content)})
        return httpx.Response(200, json={"ok": True})

    def bodies(self, suffix: str) -> list[dict[str, Any]]:
        return [
            json.loads(r.content)
            for r in self.requests
            if r.method == "POST" and r.url.path.endswith(suffix)
        ]

    def lines(self, stream: str | None = None) -> list[str]:
        return [
            line["text"]
            for body in self.bodies("/logs")
            for line in body["lines"]
            if stream in (None, line["stream"])
        ]

    def everything_sent(self) -> list[str]:
        """Every path, raw body and JSON string or key the runner sent, decoded."""
        sent = []
        for request in self.requests:
            sent += [unquote(request.url.path), request.content.decode(errors="replace")]
            if request.method == "POST":
                sent += list(_strings(json.loads(request.content)))
        return sent


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def assert_nothing_leaked(server: Server, secret: str = SECRET) -> None:
    forms = forms_of(secret)
    for text in server.everything_sent():
        assert [name for name, form in forms.items() if form in text] == [], text[:300]
        # Six bytes: a chance decoding of unrelated text never matches by accident.
        assert decodable_secret_bytes(text, secret.encode(), window=6) == [], text[:300]


def assignment_json(instance: JobInstance, secrets: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "job_id": 7,
        "attempt": 1,
        "job_token": "labcijob_test",
        "clone_url": "file:///nowhere.git",
        "commit_sha": "a" * 40,
        "job": instance.model_dump(mode="json", by_alias=True),
        "env": {"LABCI_JOB_ID": "7", "LABCI_ATTEMPT": "1"},
        "timeout_s": 120,
        "secrets": secrets,
        **extra,
    }


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "BACKOFF_FIRST_S", 0.001)


# A URL encoder in POSIX shell (busybox has no python): unreserved bytes kept, others %XX.
URLENCODE = r"""
urlencode() {
  for h in $(printf %s "$1" | od -An -v -tx1); do
    case $h in
      2d|2e|5f|7e|3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]) printf "\\$(printf %03o "0x$h")" ;;
      *) printf %%%s "$h" | tr a-f A-F ;;
    esac
  done
}
"""

# Every form a step can print with busybox alone; `sleep` puts the two writes of one line
# in two Docker frames (the line splitter's own test covers every split point).
SHELL_STEP = (
    URLENCODE
    + r"""
set -x
: "$S"
set +x
echo "raw:$S"
printf %s "${S:0:5}"; sleep 0.1; printf '%s\n' "${S:5}"
echo "stderr:$S" >&2
printf %s "$S" | base64
printf 'xx%s' "$S" | base64
printf 'y%syy' "$S" | base64
printf '{"token":"%s"}\n' "$(printf %s "$S" | sed 's/[\\"]/\\&/g')"
echo "url:$(urlencode "$S")"
i=0; while [ $i -lt 40 ]; do echo "line $i $S"; i=$((i+1)); done
test "$(printf %s "$S" | sha256sum | cut -d' ' -f1)" = "$EXPECTED_SHA" && echo secret-intact
"""
)

PYTHON_STEPS = [
    "python3 -c 'import json, os; print(json.dumps(os.environ[\"S\"]))'",
    "python3 -c 'import json, os; print(json.dumps([os.environ[\"S\"]], ensure_ascii=False))'",
    'python3 -c \'import os, urllib.parse as u; print("q=" + u.quote_plus(os.environ["S"]))\'',
    # A failing step whose traceback carries the secret, and its repr.
    'python3 -c \'import os; s = os.environ["S"]; raise RuntimeError(f"bad token {s} {s!r}")\'',
]


def secret_job(*extra_steps: str, **job: Any) -> JobInstance:
    return make_job(
        {"name": "print ${{ secrets.TOKEN }}", "run": SHELL_STEP},
        *extra_steps,
        env={
            "S": "${{ secrets.TOKEN }}",
            "EXPECTED_SHA": hashlib.sha256(SECRET_BYTES).hexdigest(),
        },
        **job,
    )


async def run_through_channel(executor: Executor, instance: JobInstance, dirs: JobDirs) -> Server:
    """Run `instance` as the job flow does: a LogSink sending one line per batch through the
    attempt's channel, step and completion reports through it too."""
    server = Server()
    transport = httpx.MockTransport(server)
    async with ServerClient("http://labci.test", "runner-token", transport=transport) as client:
        assignment = Assignment.from_json(assignment_json(instance, {"TOKEN": SECRET}))
        channel = client.channel(assignment)

        async def report_step(result: StepResult) -> None:
            await channel.step(result.index, status=result.status, exit_code=result.exit_code)

        async with LogSink(channel.logs, max_batch_lines=1, flush_interval_s=0.01) as sink:
            ctx = ExecutionContext(
                workspace=dirs.workspace,
                output_dir=dirs.output,
                scratch_dir=dirs.scratch,
                server_env=assignment.env,
                timeout_s=120,
                logs=sink,
                report_step=report_step,
                secrets=assignment.secrets,
            )
            outcome: JobOutcome = await executor.run(instance, ctx)
        await channel.complete(outcome.outcome, reason=outcome.reason)
    return server


def assert_shell_forms_masked(server: Server) -> None:
    stdout, stderr = server.lines("stdout"), server.lines("stderr")
    assert "secret-intact" in stdout  # the step itself saw the real value
    assert "raw:***" in stdout
    assert stdout.count("***") == 2  # written in two pieces; base64 of the value alone
    assert '{"token":"***"}' in stdout
    assert "url:***" in stdout
    assert [f"line {n} ***" for n in range(40)] == [t for t in stdout if t.startswith("line ")]
    assert masked_base64(b"xx", b"") in stdout
    assert masked_base64(b"y", b"yy") in stdout
    assert "+ : '***'" in stderr
    assert "stderr:***" in stderr
    assert "▶ print ***" in server.lines("system")
    assert_nothing_leaked(server)


async def test_process_steps_printing_the_secret_send_only_masks(job_dirs: JobDirs) -> None:
    executor = ProcessExecutor(base_env=HOST_ENV, grace_s=2)
    server = await run_through_channel(executor, secret_job(*PYTHON_STEPS), job_dirs)
    assert_shell_forms_masked(server)
    stdout, stderr = server.lines("stdout"), server.lines("stderr")
    assert stdout[-3:] == ['"***"', '["***"]', "q=***"]
    assert "RuntimeError: bad token *** '***'" in stderr
    (complete,) = server.bodies("/complete")
    assert complete["outcome"] == "failure"
    assert len(server.bodies("/logs")) == len(server.lines())  # one line per batch


@pytest.fixture
def docker_executor(request: pytest.FixtureRequest) -> Iterator[tuple[DockerExecutor, str]]:
    docker_host = request.getfixturevalue("docker_host")
    images = request.getfixturevalue("test_images")
    runner_name = f"test-{uuid.uuid4().hex[:8]}"
    settings = DockerSettings(runner_name=runner_name, grace_s=2, pull_policy="never")
    yield DockerExecutor(DockerEngine(docker_host), settings), images.busybox
    engine = docker.DockerClient(base_url=docker_host)
    try:
        label = f"{LABEL_PREFIX}runner={runner_name}"
        assert engine.containers.list(all=True, filters={"label": label}) == []
    finally:
        engine.close()


async def test_container_steps_printing_the_secret_send_only_masks(
    docker_executor: tuple[DockerExecutor, str], job_dirs: JobDirs
) -> None:
    executor, image = docker_executor
    instance = secret_job(container={"image": image})
    server = await run_through_channel(executor, instance, job_dirs)
    assert_shell_forms_masked(server)
    (complete,) = server.bodies("/complete")
    assert complete["outcome"] == "success"


async def run_job(tmp_path: Path, instance: JobInstance, secrets: dict[str, str]) -> Server:
    """The whole job flow: fetch (with its secrets), checkout of a real repository, steps,
    metrics, artifacts and completion, as the agent runs it."""
    repo = make_repo(tmp_path / "git")
    sha = repo.commit({"README": "experiment\n"})
    body = assignment_json(instance, secrets, clone_url=repo.bare.as_uri(), commit_sha=sha)
    server = Server(body)
    runtime = JobRuntime(
        client=ServerClient(
            "http://labci.test", "runner-token", transport=httpx.MockTransport(server)
        ),
        executor=ProcessExecutor(base_env=HOST_ENV, grace_s=2),
        mirrors=MirrorCache(tmp_path / "runner", env=HOST_ENV),
        running=RunningJobs(),
        jobs_dir=tmp_path / "jobs",
    )
    async with runtime.client:
        await execute_job(runtime, 7, 1)
    assert server.requests[-1].url.path == "/api/v1/runner/jobs/7/complete"
    return server


async def test_metric_names_and_artifact_paths_reach_the_server_masked(tmp_path: Path) -> None:
    key = "mk-7Hq2Zp9xW4"  # a secret that is a valid metric name and file name
    instance = make_job(
        {
            "name": "train with ${{ secrets.KEY }}",
            "run": 'echo "::metric name=acc.$KEY::0.5"; echo data > "$LABCI_OUTPUT/m-$KEY.txt"',
        },
        env={"KEY": "${{ secrets.KEY }}"},
        artifacts=["*.txt"],
    )
    server = await run_job(tmp_path, instance, {"KEY": key})
    (complete,) = server.bodies("/complete")
    assert (complete["outcome"], complete["metrics"]) == ("success", {"acc.***": 0.5})
    uploads = [unquote(r.url.path) for r in server.requests if r.method == "PUT"]
    assert uploads == ["/api/v1/runner/jobs/7/artifacts/m-***.txt"]
    assert "▶ train with ***" in server.lines("system")
    assert_nothing_leaked(server, key)


async def test_reasons_and_the_progress_line_are_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The metric line is malformed: the job's reason quotes it, secret included.
    instance = make_job('echo "::metric name=loss::$S"', env={"S": "${{ secrets.TOKEN }}"})
    server = await run_job(tmp_path, instance, {"TOKEN": SECRET})
    (complete,) = server.bodies("/complete")
    reason = (
        """metrics invalid: 'loss' is not a number (got "***...") in '::metric name=loss::***'"""
    )
    assert (complete["outcome"], complete["reason"]) == ("error", reason)
    assert complete["metrics_error"] == reason
    printed = capsys.readouterr().out
    assert "job 7 attempt 1: error in " in printed
    assert f"({reason})" in printed
    assert SECRET[:6] not in printed
    assert_nothing_leaked(server)


async def test_metric_names_reach_the_server_masked() -> None:
    server = Server()
    transport = httpx.MockTransport(server)
    async with ServerClient("http://labci.test", "runner-token", transport=transport) as client:
        instance = make_job("true")
        channel = client.channel(Assignment.from_json(assignment_json(instance, {"T": SECRET})))
        await channel.complete("success", metrics={f"acc.{SECRET}": 0.5, "loss": 0.1})
        await channel.release(f"gpu busy: {SECRET * 40}")
    (complete,) = server.bodies("/complete")
    assert complete["metrics"] == {"acc.***": 0.5, "loss": 0.1}
    (release,) = server.bodies("/release")
    assert release["reason"] == "gpu busy: ***"
    assert_nothing_leaked(server)


async def test_an_untrusted_job_without_secrets_redacts_nothing() -> None:
    server = Server()
    transport = httpx.MockTransport(server)
    body = assignment_json(make_job("true"), {})
    del body["secrets"]
    async with ServerClient("http://labci.test", "runner-token", transport=transport) as client:
        assignment = Assignment.from_json(body)
        line = {"seq": 0, "step": 0, "stream": "stdout", "text": "*** s3cr3t", "ts": 1.0}
        await client.channel(assignment).logs([line])
    assert assignment.secrets == {}
    assert server.lines() == ["*** s3cr3t"]
    assert "secrets" not in repr(Assignment.from_json(assignment_json(make_job("true"), {})))
