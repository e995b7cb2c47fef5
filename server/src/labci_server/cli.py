"""The `labci` command: serve, worker, dev, demo, db, runners, hook, trigger, validate,
dispatch, cancel."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_people import (
    add_people_commands,
    cmd_runners_drain,
    cmd_runners_list,
    cmd_runners_revoke,
)
from .cli_secrets import add_secrets_commands
from .errors import ConfigError, LabciError

if TYPE_CHECKING:
    from .dev import DevStack
from .settings import Settings

DEFAULT_STATE_DIR = ".labci-dev"


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a number of processes, 1 or more, not {text!r}")
    return int(text)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .settings import share_process_metrics

    made = None
    if args.workers > 1:
        # Before prometheus_client is first imported (by the app, below): /metrics then
        # sums the figures of every process, whichever answers.
        made = share_process_metrics()
    import uvicorn

    from .app import create_app
    from .auth.sessions import with_session_secret
    from .db.migrate import upgrade
    from .http import serve_options
    from .http.processes import bind, serve_forked
    from .secrets import check_secret_key

    if settings.webhook_secret is None:
        raise ConfigError(
            "LABCI_WEBHOOK_SECRET is not set; `labci serve` refuses to accept unsigned webhooks"
        )
    if settings.redis_url is None:
        raise ConfigError("LABCI_REDIS_URL is not set (only `labci dev` starts an embedded Redis)")
    if not args.no_migrate:
        asyncio.run(upgrade(settings.database_url))
    settings = asyncio.run(with_session_secret(settings))
    asyncio.run(check_secret_key(settings))  # a wrong LABCI_SECRET_KEY stops it here

    def run_one(sock: socket.socket | None = None) -> None:
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            # Our root handler (LABCI_LOG_FORMAT) carries uvicorn's lines, the access log too.
            log_config=None,
            log_level="info",
            access_log=True,
            **serve_options(settings),
        )
        uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)

    if args.workers <= 1:
        run_one()
        return 0
    try:
        return serve_forked(args.workers, bind(settings.host, settings.port), run_one)
    finally:
        if made is not None:  # ours, not the operator's: the figures go with the processes
            shutil.rmtree(made, ignore_errors=True)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from .workers import check_worker, make_worker

    if settings.redis_url is None:
        raise ConfigError("LABCI_REDIS_URL is not set")
    if args.check:
        healthy, said = asyncio.run(check_worker(settings))
        print(said)
        return 0 if healthy else 1
    if settings.worker_metrics_address:
        from .operations.metrics import serve_metrics

        serve_metrics(settings.worker_metrics_address)
    make_worker(settings).run()
    return 0


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP stop `labci dev`/`demo` as Ctrl-C does: the ExitStack unwinds and
    stops every child (server, worker, runner, embedded redis-server)."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from .dev import open_stack

    stop_on_signals()
    with ExitStack() as stack:
        dev = open_stack(stack, settings, Path(args.state_dir))
        print(
            f"labci is running at {dev.url} (state in {args.state_dir}); Ctrl-C stops it\n"
            "make an administrator with: labci users create NAME --admin "
            f"(with LABCI_DATABASE_URL=sqlite:///{Path(args.state_dir).resolve() / 'labci.db'})",
            flush=True,
        )
        return supervise(dev)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .dev import open_stack

    stop_on_signals()
    with ExitStack() as stack:
        print(
            "labci demo: starting the stack (embedded Redis, SQLite, server, worker, runner)…",
            flush=True,
        )
        dev = open_stack(stack, settings, Path(args.state_dir))
        ok = run_demo(dev, timeout_s=args.timeout)
        if args.exit:
            return 0 if ok else 1
        print(
            f"\nlabci keeps running at {dev.url} — open it to see runs, logs and metrics. Ctrl-C stops it.",
            flush=True,
        )
        return supervise(dev)


def supervise(dev: DevStack) -> int:
    import time

    try:
        while not (dead := dev.dead()):
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    print(
        f"labci: {', '.join(dead)} stopped unexpectedly; see the logs in the state directory",
        file=sys.stderr,
    )
    return 1


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from .db.migrate import current_revision, upgrade

    asyncio.run(upgrade(settings.database_url, args.revision))
    print(f"database schema is at {asyncio.run(current_revision(settings.database_url))}")
    return 0


def cmd_db_current(settings: Settings, _args: argparse.Namespace) -> int:
    from .db.migrate import current_revision, revisions

    current = asyncio.run(current_revision(settings.database_url))
    head = revisions()[-1][0]
    if current is None:
        print(f"no labci schema yet (head is {head}); run `labci db upgrade`")
        return 1
    print(
        f"{current}{' (head)' if current == head else f' (head is {head}; run `labci db upgrade`)'}"
    )
    return 0 if current == head else 1


def cmd_db_history(_settings: Settings, _args: argparse.Namespace) -> int:
    from .db.migrate import revisions

    for revision, doc in revisions():
        print(f"{revision}  {doc}")
    return 0


def cmd_runners_token(settings: Settings, _args: argparse.Namespace) -> int:
    from .dev import registration_token

    if settings.redis_url is None:
        raise ConfigError("LABCI_REDIS_URL is not set")
    print(asyncio.run(registration_token(settings)))
    return 0


def cmd_badge_token(settings: Settings, args: argparse.Namespace) -> int:
    from .db.engine import make_engine, make_sessionmaker
    from .web.badge_tokens import ensure_badge_token

    async def issue() -> str:
        engine = make_engine(settings.database_url)
        try:
            return await ensure_badge_token(make_sessionmaker(engine), args.repo)
        finally:
            await engine.dispose()

    print(asyncio.run(issue()))
    return 0


def cmd_hook_install(settings: Settings, args: argparse.Namespace) -> int:
    """On the server's machine: register the bare repository, give its hook a new token
    (the old one stops working) and write the hook."""
    from .db.engine import make_engine, make_sessionmaker
    from .forge.gitlocal_trigger import bare_repo, install_hook, register_hook

    repo = bare_repo(args.repo)

    async def register() -> str:
        engine = make_engine(settings.database_url)
        try:
            return await register_hook(make_sessionmaker(engine), repo, public=args.public)
        finally:
            await engine.dispose()

    token = asyncio.run(register())
    hook = install_hook(repo, server_url=args.server or settings.public_url, token=token)
    shown = "public" if args.public else "private"
    print(f"installed {hook} ({shown} repository; its token is in {repo / 'labci'})")
    return 0


def cmd_hook_receive(settings: Settings, args: argparse.Namespace) -> int:
    from .forge.gitlocal_trigger import bare_repo, receive_pushes

    for line in receive_pushes(
        bare_repo(args.repo), sys.stdin.read().splitlines(), server_url=settings.public_url
    ):
        print(line)
    return 0


def cmd_trigger(settings: Settings, args: argparse.Namespace) -> int:
    from .forge.gitlocal_trigger import bare_repo, pull_request_event, push_event, send_hook_event

    repo = bare_repo(args.repo)
    if args.kind == "push":
        event = push_event(repo, args.branch)
    else:
        event = pull_request_event(repo, args.head, args.base)
    result = send_hook_event(args.server or settings.public_url, repo, event)
    print(
        f"{event['kind']} {event['branch']} at {event['commit_sha'][:7]} → event {result.get('event_id')}"
    )
    return 0


def cmd_validate(_settings: Settings, args: argparse.Namespace) -> int:
    from .validate import validate_files, workflow_paths

    paths = workflow_paths(args.paths, Path())
    if not paths:
        print("labci validate: no .labci/*.yml files here", file=sys.stderr)
        return 1
    report = validate_files(paths, sys.stdout)
    return 1 if report.failed_files else 0


def cmd_dispatch(settings: Settings, args: argparse.Namespace) -> int:
    from labci_spec import InputsError, SpecErrors

    from .client import api_call
    from .planning.dispatch import DispatchRequest, parse_inputs, prepare_dispatch

    request = DispatchRequest(
        repo=args.repo, workflow=args.workflow, ref=args.ref, inputs=parse_inputs(args.input)
    )
    try:
        event = asyncio.run(prepare_dispatch(settings, request))
    except SpecErrors as exc:
        for error in exc.errors:
            print(f"{error.path}:{error.line}:{error.column}: error: {error.message}")
        return 1
    except InputsError as exc:
        print(f"labci dispatch: {args.workflow}: {exc}", file=sys.stderr)
        return 1
    result = api_call(settings, args.server, "POST", "/api/v1/dispatches", event)
    shown = ", ".join(f"{k}={v}" for k, v in event["inputs"].items()) or "no inputs"
    print(
        f"dispatched {event['workflow_path']} ({event['workflow_name']}) at {args.ref} "
        f"({event['commit_sha'][:7]}) with {shown} → event {result.get('event_id')}"
    )
    return 0


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from .client import api_call

    body = {"reason": args.reason} if args.reason else {}
    result = api_call(settings, args.server, "POST", f"/api/v1/runs/{args.run}/cancel", body)
    print(f"run {args.run}: {result.get('cancelled_jobs', 0)} job(s) cancelled")
    return 0


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    from .client import api_call

    result = api_call(settings, args.server, "POST", f"/api/v1/runs/{args.run}/approve", {})
    runs = ", ".join(f"#{run_id}" for run_id in result.get("approved_runs", []))
    print(f"approved by {result.get('by')}: run(s) {runs} start")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labci", description="Continuous integration for experiments."
    )
    parser.add_argument("--version", action="version", version=f"labci {version('labci-server')}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the schema first")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="server processes sharing the port (webhook ingest scales with them); default 1",
    )
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run the server worker (planning, scheduling, outbox)")
    worker.add_argument(
        "--check",
        action="store_true",
        help="health check: exit 0 if this host's worker wrote its health record lately",
    )
    worker.set_defaults(func=cmd_worker)
    for name, func, text in (
        ("dev", cmd_dev, "run the whole stack locally on embedded defaults"),
        ("demo", cmd_demo, "run the stack and an example experiment pull request"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--state-dir", default=DEFAULT_STATE_DIR, help="where SQLite, Redis data and logs live"
        )
        p.set_defaults(func=func)
        if name == "demo":
            p.add_argument(
                "--exit", action="store_true", help="stop once both checks have finished"
            )
            p.add_argument(
                "--timeout", type=float, default=600.0, help="seconds to wait for the checks"
            )
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    upgrade = db.add_parser("upgrade", help="apply migrations (up to REVISION, default head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db_upgrade)
    db.add_parser(
        "current", help="the database's revision; exit 1 unless it is the newest"
    ).set_defaults(func=cmd_db_current)
    db.add_parser("history", help="every migration, oldest first").set_defaults(func=cmd_db_history)
    runners = sub.add_parser("runners", help="runner administration").add_subparsers(
        dest="runners_command", required=True
    )
    runners.add_parser("token", help="print a single-use runner registration token").set_defaults(
        func=cmd_runners_token
    )
    for verb, about in (
        ("revoke", "revoke a runner: its token answers 401"),
        ("remove", "revoke a runner and take it off the list; jobs only it could take fail"),
    ):
        command = runners.add_parser(verb, help=about)
        command.add_argument("name")
        command.set_defaults(func=cmd_runners_revoke)
    listing = runners.add_parser(
        "list",
        help="every runner: state, labels, executors, version, slots, CPUs and memory, GPUs, "
        "last heartbeat",
    )
    listing.add_argument("--json", action="store_true", help="the rows as JSON")
    listing.set_defaults(func=cmd_runners_list)
    for verb, about in (
        ("drain", "drain a runner: it finishes its jobs and gets no new one"),
        ("resume", "resume a drained runner: it gets new jobs again"),
    ):
        command = runners.add_parser(verb, help=about)
        command.add_argument("name")
        command.set_defaults(func=cmd_runners_drain)
    badge = sub.add_parser(
        "badge-token", help="print the token a private repository's badge URLs need (?token=)"
    )
    badge.add_argument("repo", help="OWNER/REPO, or the path of a local bare repository")
    badge.set_defaults(func=cmd_badge_token)
    hook = sub.add_parser("hook", help="the local git forge's post-receive hook").add_subparsers(
        dest="hook_command", required=True
    )
    install = hook.add_parser(
        "install",
        help="register a bare repository (on the server's machine) and install its hook; "
        "again: a new hook token",
    )
    install.add_argument("repo")
    install.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    install.add_argument(
        "--public", action="store_true", help="readable without signing in (default: private)"
    )
    install.set_defaults(func=cmd_hook_install)
    receive = hook.add_parser("receive", help="(called by the hook) send pushes read from stdin")
    receive.add_argument("repo")
    receive.set_defaults(func=cmd_hook_receive)
    _add_trigger(sub)
    validate = sub.add_parser("validate", help="check workflow files (default .labci/*.yml)")
    validate.add_argument("paths", nargs="*", help="files, or directories holding .labci/")
    validate.set_defaults(func=cmd_validate)
    _add_dispatch(sub)
    add_people_commands(sub)
    add_secrets_commands(sub)
    cancel = sub.add_parser("cancel", help="stop a run: its unfinished jobs are cancelled")
    cancel.add_argument("run", type=int, help="the run's id (as in its page's address)")
    cancel.add_argument("--reason", help="why (shown after 'stopped by YOU')")
    cancel.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    cancel.set_defaults(func=cmd_cancel)
    approve = sub.add_parser(
        "approve", help="let a fork's pull request run at its current commit (write permission)"
    )
    approve.add_argument("run", type=int, help="a run awaiting approval (its page names it)")
    approve.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    approve.set_defaults(func=cmd_approve)
    return parser


def _add_dispatch(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dispatch = sub.add_parser(
        "dispatch", help="start a manual run of a workflow with `on: workflow_dispatch`"
    )
    dispatch.add_argument(
        "--repo", required=True, help="owner/name of a GitHub repository, or a bare repo's path"
    )
    dispatch.add_argument("--workflow", required=True, help="file name, e.g. sweep.yml")
    dispatch.add_argument("--ref", default="main", help="branch or commit (default main)")
    dispatch.add_argument(
        "-i", "--input", action="append", default=[], metavar="NAME=VALUE", help="an input"
    )
    dispatch.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    dispatch.set_defaults(func=cmd_dispatch)


def _add_trigger(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trigger = sub.add_parser("trigger", help="send an event of a local bare repository")
    kinds = trigger.add_subparsers(dest="kind", required=True)
    push = kinds.add_parser("push", help="a push to a branch")
    push.add_argument("--branch", default="main")
    pr = kinds.add_parser("pull-request", help="open or update a pull request")
    pr.add_argument("--head", required=True)
    pr.add_argument("--base", default="main")
    for p in (push, pr):
        p.add_argument("--repo", required=True, help="path of the bare repository")
        p.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
        p.set_defaults(func=cmd_trigger)
    pr.set_defaults(kind="pull_request")


def main(argv: list[str] | None = None) -> int:
    from .operations.logformat import configure_logging

    args = build_parser().parse_args(argv)
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    try:
        settings = Settings()
        # Services log their work; interactive commands print only what a person asked for.
        service = args.command in ("serve", "worker") and not getattr(args, "check", False)
        configure_logging(settings.log_format, logging.INFO if service else logging.WARNING)
        return func(settings, args)
    except LabciError as exc:
        print(f"labci: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
