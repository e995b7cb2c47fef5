"""The `labci` command as a person uses it: validate, and clear errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

GOOD = (
    "name: ok\non: push\njobs:\n  a:\n    runs-on: [cpu, gpu]\n    steps:\n      - run: echo hi\n"
)
BAD = "name: bad\non: push\njobs:\n  a:\n    runs_on: cpu\n    timeout-minutes: two\n    steps:\n      - run: echo\n"


def labci(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labci_server.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_validate_reports_every_error_with_file_line_and_column(tmp_path):
    (tmp_path / ".labci").mkdir()
    (tmp_path / ".labci" / "good.yml").write_text(GOOD)
    (tmp_path / ".labci" / "bad.yml").write_text(BAD)
    done = labci("validate", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(
        line.startswith(".labci/bad.yml:5:5: error: ") and "did you mean 'runs-on'" in line
        for line in lines
    )
    assert any(line.startswith(".labci/bad.yml:6:22: error: ") and "two" in line for line in lines)
    # The offending line, and a caret under the column.
    at = lines.index(next(line for line in lines if line.startswith(".labci/bad.yml:6:22:")))
    assert lines[at + 1 : at + 3] == ["        timeout-minutes: two", " " * 25 + "^"]
    assert ".labci/good.yml: ok — workflow 'ok' on push" in lines
    assert "  a: 1 instance, on [cpu, gpu]" in lines
    assert lines[-1] == "1 of 2 workflow files have errors (2 in all)"


def test_validate_passes_on_good_files_and_summarises_them(tmp_path):
    (tmp_path / "w.yml").write_text(GOOD)
    (tmp_path / "m.yml").write_text(
        "on: [push, pull_request]\njobs:\n  fit:\n    runs-on: gpu\n"
        "    resources: {gpus: 2}\n    strategy: {matrix: {seed: [1, 2, 3], lr: [0.1, 0.2]}}\n"
        "    steps: [{run: train}]\n    metrics: {repeats: seed}\n"
        "  eval: {runs-on: cpu, needs: fit, steps: [{run: eval}]}\n"
    )
    done = labci("validate", str(tmp_path / "w.yml"), str(tmp_path / "m.yml"))
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'w.yml'}: ok — workflow 'ok' on push",
        "  a: 1 instance, on [cpu, gpu]",
        f"{tmp_path / 'm.yml'}: ok — workflow 'm' on push, pull_request",
        "  fit: 6 instances, matrix seed: 3, lr: 2, repeats: seed, on [gpu], 2 GPUs",
        "  eval: 1 instance, on [cpu], needs fit",
        "2 workflow files ok, 3 jobs",
    ]


def test_validate_refuses_script_injection_with_the_place(tmp_path):
    (tmp_path / "inj.yml").write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: cpu\n    steps:\n      - run: |\n"
        '          echo start\n          echo "${{ github.event.pull_request.title }}"\n'
    )
    done = labci("validate", str(tmp_path / "inj.yml"))
    assert done.returncode == 1
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'inj.yml'}:8:21: error: jobs.a.steps[0].run: ")
    assert "`github.event.pull_request.title` cannot be used here" in first
    assert "script-injection" in first


def test_serve_without_webhook_secret_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LABCI_REDIS_URL": "redis://127.0.0.1:1/0"}
    done = labci("serve", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "labci: error: LABCI_WEBHOOK_SECRET is not set; `labci serve` refuses to accept unsigned webhooks"
    )


def test_badge_token_is_issued_once_and_unknown_repositories_are_named(tmp_path, database_url):
    import asyncio

    from labci_server.db.engine import make_engine, make_sessionmaker
    from labci_server.db.migrate import upgrade
    from labci_server.db.queries.repositories import ensure_repository

    async def prepare() -> None:
        await upgrade(database_url)
        engine = make_engine(database_url)
        async with make_sessionmaker(engine)() as session, session.begin():
            await ensure_repository(
                session, provider="github", full_name="octo/private", clone_url="https://x"
            )
        await engine.dispose()

    asyncio.run(prepare())
    env = {"PATH": "/usr/bin:/bin", "LABCI_DATABASE_URL": database_url}
    first = labci("badge-token", "octo/private", env=env)
    assert first.returncode == 0, first.stderr
    token = first.stdout.strip()
    assert len(token) >= 24
    assert labci("badge-token", "octo/private", env=env).stdout.strip() == token
    unknown = labci("badge-token", "octo/nothing", env=env)
    assert unknown.returncode != 0
    assert "octo/nothing" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_runners_drain_and_resume_from_the_command_line(database_url):
    import asyncio

    from labci_server.db.engine import make_engine, make_sessionmaker
    from labci_server.db.migrate import upgrade
    from labci_server.db.models import Runner
    from labci_server.db.queries.runners import all_runners

    async def runners(add: bool = False) -> list[Runner]:
        engine = make_engine(database_url)
        async with make_sessionmaker(engine)() as session, session.begin():
            if add:
                session.add(Runner(name="lab-gpu-1", labels=["gpu"], token_hash="t",
                                   resources={"cpus": 16, "memory_bytes": 64 * 2**30}))  # fmt: skip
            found = await all_runners(session)
        await engine.dispose()
        return found

    asyncio.run(upgrade(database_url))
    asyncio.run(runners(add=True))
    env = {"PATH": "/usr/bin:/bin", "LABCI_DATABASE_URL": database_url, "USER": "boss"}
    listed = labci("runners", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    head, row = listed.stdout.splitlines()
    assert head.split() == [
        "NAME",
        "STATE",
        "LABELS",
        "EXECUTORS",
        "VERSION",
        "SLOTS",
        "SIZE",
        "GPUS",
        "SEEN",
    ]
    assert row.split() == [
        "lab-gpu-1", "offline", "gpu", "process", "-", "0/1", "16", "CPUs", "·", "64", "GiB",
        "-", "never",
    ]  # fmt: skip
    drained = labci("runners", "drain", "lab-gpu-1", env=env)
    assert drained.returncode == 0, drained.stderr
    assert "drained (1 registration(s))" in drained.stdout
    (runner,) = asyncio.run(runners())
    assert runner.drained_at is not None
    assert "offline (drained)" in labci("runners", "list", env=env).stdout
    (as_json,) = json.loads(labci("runners", "list", "--json", env=env).stdout)
    assert (as_json["name"], as_json["drained_by"]) == ("lab-gpu-1", "boss")
    resumed = labci("runners", "resume", "lab-gpu-1", env=env)
    assert "resumed" in resumed.stdout
    assert asyncio.run(runners())[0].drained_at is None
    unknown = labci("runners", "drain", "nobody", env=env)
    assert unknown.returncode != 0
    assert "no active runner named 'nobody'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    removed = labci("runners", "remove", "lab-gpu-1", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "removed (1 registration(s))" in removed.stdout
    assert asyncio.run(runners()) == []
    assert "no runners yet" in labci("runners", "list", env=env).stdout
