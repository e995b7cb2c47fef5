"""`labci users|repos|tokens|login|logout` and `labci runners revoke`: people, permissions,
personal API tokens, and revoking a runner.

`users`, `repos`, `tokens` and `runners revoke` act on the database directly (run them on
the server, like `labci db upgrade`); `login` and `logout` talk to a server over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from .auth import accounts
from .auth.api_tokens import DEFAULT_DAYS, TokenRequest
from .auth.levels import LEVELS, SCOPES
from .client import call, server_url, store_credentials, stored_credentials
from .db.engine import make_engine, make_sessionmaker
from .errors import BadRequest, NotFound
from .settings import Settings

T = TypeVar("T")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[accounts.Sessions]:
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def on_database(settings: Settings, action: Callable[[accounts.Sessions], Awaitable[T]]) -> T:
    async def run() -> T:
        async with database(settings) as sessions:
            return await action(sessions)

    return asyncio.run(run())


def read_secret(prompt: str, *, from_stdin: bool) -> str:
    """A password or token: a line of standard input, or typed without echo."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(prompt)


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    password = read_secret(f"password for {args.login}: ", from_stdin=args.password_stdin)

    async def create(sessions: accounts.Sessions) -> Any:
        return await accounts.create_local_user(
            sessions, login=args.login, password=password, admin=args.admin
        )

    on_database(settings, create)
    role = "administrator" if args.admin else "user"
    print(f"local {role} {args.login} created; sign in at {settings.public_url}/login")
    return 0


def cmd_users_password(settings: Settings, args: argparse.Namespace) -> int:
    password = read_secret(f"new password for {args.login}: ", from_stdin=args.password_stdin)
    on_database(settings, lambda s: accounts.set_password(s, login=args.login, password=password))
    print(f"password of {args.login} changed")
    return 0


def cmd_users_list(settings: Settings, _args: argparse.Namespace) -> int:
    from .db.queries import people

    async def listed(sessions: accounts.Sessions) -> list[Any]:
        async with sessions() as session:
            return await people.all_users(session)

    for user in on_database(settings, listed):
        flags = [f for f, on in (("admin", user.is_admin), ("disabled", user.disabled)) if on]
        print(f"{user.provider}:{user.login}" + (f" ({', '.join(flags)})" if flags else ""))
    return 0


def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> int:
    async def disable(sessions: accounts.Sessions) -> None:
        user = await accounts.find_user(sessions, args.login)
        await accounts.set_disabled(sessions, user, disabled=not args.enable)

    on_database(settings, disable)
    print(f"{args.login} {'enabled' if args.enable else 'disabled'}")
    return 0


def cmd_repos_list(settings: Settings, _args: argparse.Namespace) -> int:
    from .db.queries import people

    async def listed(sessions: accounts.Sessions) -> list[Any]:
        async with sessions() as session:
            return await people.all_repositories(session)

    for repo in on_database(settings, listed):
        print(f"{repo.provider}  {'private' if repo.private else 'public '}  {repo.full_name}")
    return 0


def cmd_repos_grant(settings: Settings, args: argparse.Namespace) -> int:
    async def grant(sessions: accounts.Sessions) -> None:
        repo = await accounts.find_repository_named(sessions, args.repo)
        user = await accounts.find_user(sessions, args.user)
        await accounts.grant(sessions, repo=repo, user=user, level=args.level)

    on_database(settings, grant)
    print(f"{args.user} has {args.level} permission on {args.repo}")
    return 0


def cmd_repos_visibility(settings: Settings, args: argparse.Namespace) -> int:
    async def change(sessions: accounts.Sessions) -> None:
        repo = await accounts.find_repository_named(sessions, args.repo)
        await accounts.set_visibility(sessions, repo, private=args.visibility == "private")

    on_database(settings, change)
    print(f"{args.repo} is {args.visibility}")
    return 0


def cmd_repos_fork_approval(settings: Settings, args: argparse.Namespace) -> int:
    from .planning.approval import set_fork_approval

    async def change(sessions: accounts.Sessions) -> None:
        repo = await accounts.find_repository_named(sessions, args.repo)
        await set_fork_approval(sessions, repo, args.policy)

    on_database(settings, change)
    print(f"{args.repo}: fork pull requests wait for approval: {args.policy}")
    return 0


def cmd_repos_bisect_budget(settings: Settings, args: argparse.Namespace) -> int:
    from .bisection.advance import set_budget

    runs = None if args.runs == "default" else _runs(args.runs)

    async def change(sessions: accounts.Sessions) -> None:
        repo = await accounts.find_repository_named(sessions, args.repo)
        await set_budget(sessions, repo, runs)

    on_database(settings, change)
    if runs is None:
        print(f"{args.repo}: {settings.bisect_runs_per_day} bisection runs a day (the server's)")
    elif runs == 0:
        print(f"{args.repo}: bisection is off")
    else:
        print(f"{args.repo}: {runs} bisection runs a day")
    return 0


def cmd_repos_job_limit(settings: Settings, args: argparse.Namespace) -> int:
    from .db.queries.queue import set_job_limit

    if args.jobs == "default":
        limit = None
    elif args.jobs.isdigit():
        limit = int(args.jobs)
    else:
        raise BadRequest(
            f"the limit is a number of jobs (0: none at all) or 'default', not {args.jobs!r}"
        )

    async def change(sessions: accounts.Sessions) -> None:
        repo = await accounts.find_repository_named(sessions, args.repo)
        async with sessions() as session, session.begin():
            await set_job_limit(session, repository_id=repo.id or 0, limit=limit)

    on_database(settings, change)
    if limit is None:
        server = settings.repository_max_jobs
        print(f"{args.repo}: {server or 'no limit on'} jobs at once (the server's)")
    else:
        print(f"{args.repo}: at most {limit} jobs queued or running at once")
    return 0


def _runs(text: str) -> int:
    if not text.isdigit():
        raise BadRequest(
            f"the budget is a number of runs a day (0: off) or 'default', not {text!r}"
        )
    return int(text)


def cmd_tokens_create(settings: Settings, args: argparse.Namespace) -> int:
    days = None if args.no_expiry else args.expires_days

    async def make(sessions: accounts.Sessions) -> dict[str, Any]:
        user = await accounts.find_user(sessions, args.user)
        return await accounts.new_token_for(
            sessions, user, TokenRequest(args.name, args.scope, days)
        )

    made = on_database(settings, make)
    print(made["token"])
    return 0


def cmd_tokens_list(settings: Settings, args: argparse.Namespace) -> int:
    async def listed(sessions: accounts.Sessions) -> list[dict[str, Any]]:
        user = await accounts.find_user(sessions, args.user)
        return await accounts.tokens_of(sessions, user)

    for token in on_database(settings, listed):
        state = "revoked" if token["revoked_at"] else "active"
        expires = _day(token["expires_at"]) if token["expires_at"] else "never"
        print(f"{token['id']}  {token['scope']:<5}  {state:<7}  expires {expires}  {token['name']}")
    return 0


def cmd_tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    on_database(settings, lambda s: accounts.revoke_token(s, None, args.id))
    print(f"token {args.id} revoked")
    return 0


def cmd_runners_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from .scheduling.runners import revoke_runner_with_acl

    remove = args.runners_command == "remove"
    count = on_database(
        settings, lambda s: revoke_runner_with_acl(settings, s, args.name, remove=remove)
    )
    if remove:
        print(f"runner {args.name} removed ({count} registration(s)): its token answers 401, "
              "it is no longer listed, and jobs only it could take fail")  # fmt: skip
    else:
        print(f"runner {args.name} revoked ({count} registration(s)); its token answers 401 now")
    return 0


def cmd_runners_list(settings: Settings, args: argparse.Namespace) -> int:
    from .scheduling.runner_listing import runner_rows

    rows = on_database(settings, lambda s: runner_rows(s, lease_s=settings.lease_s, visible=None))
    if args.json:
        print(json.dumps([row.as_json() for row in rows], indent=2))
        return 0
    if not rows:
        print("no runners yet: `labci runners token` makes a registration token")
        return 0
    now = time.time()
    table = [("NAME", "STATE", "LABELS", "EXECUTORS", "VERSION", "SLOTS", "SIZE", "GPUS", "SEEN")]
    for row in rows:
        state = row.state + (" (drained)" if row.drained_at and row.state != "revoked" else "")
        gpus = ", ".join(
            f"{g.get('id')}:{g.get('model') or 'GPU'}"
            + ("" if g.get("healthy", True) else " unhealthy")
            + (" held" if g.get("job") else "")
            for g in row.gpus
        )
        seen = f"{now - row.last_heartbeat_at:.0f} s ago" if row.last_heartbeat_at else "never"
        size = row.size() or "-"
        table.append((row.name, state, ",".join(row.labels), ",".join(row.executors) or "-",
                      row.version or "-", f"{row.busy}/{row.slots}", size, gpus or "-",
                      seen))  # fmt: skip
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
    return 0


def cmd_runners_drain(settings: Settings, args: argparse.Namespace) -> int:
    from .scheduling.runners import drain_runner

    drain = args.runners_command == "drain"
    by = getpass.getuser()
    count, released = on_database(
        settings, lambda s: drain_runner(s, args.name, drain=drain, by=by)
    )
    if drain:
        print(f"runner {args.name} drained ({count} registration(s)): it finishes its jobs "
              "and gets no new one until `labci runners resume`; "
              f"{released} job(s) queued on it go to other runners")  # fmt: skip
    else:
        print(f"runner {args.name} resumed ({count} registration(s)): it gets new jobs again")
    return 0


def cmd_login(settings: Settings, args: argparse.Namespace) -> int:
    server = server_url(settings, args.server)
    if args.with_token:
        token = read_secret("token: ", from_stdin=True).strip()
        me = call("GET", f"{server}/api/v1/user", token=token)
        entry = {"token": token, "login": me["login"]}
    else:
        login = args.login or input("login: ")
        password = read_secret("password: ", from_stdin=args.password_stdin)
        made = call(
            "POST",
            f"{server}/api/v1/tokens",
            body={
                "login": login,
                "password": password,
                "name": args.name,
                "scope": args.scope,
                "expires_in_days": args.expires_days,
            },
        )
        entry = {"token": made["token"], "login": login, "id": made["id"]}
    path = store_credentials(settings, server, entry)
    print(f"signed in to {server} as {entry['login']}; token kept in {path}")
    return 0


def cmd_logout(settings: Settings, args: argparse.Namespace) -> int:
    server = server_url(settings, args.server)
    entry = stored_credentials(settings).get(server)
    if not isinstance(entry, dict):
        raise NotFound(f"no stored token for {server}")
    if isinstance(entry.get("id"), int):
        try:
            call("DELETE", f"{server}/api/v1/tokens/{entry['id']}", token=entry["token"])
        except BadRequest as exc:  # the server may be gone; the local copy goes anyway
            print(f"labci: could not revoke the token on the server: {exc}", file=sys.stderr)
    store_credentials(settings, server, None)
    print(f"signed out of {server}")
    return 0


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def add_people_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = sub.add_parser("users", help="local accounts (on the server)").add_subparsers(
        dest="users_command", required=True
    )
    create = users.add_parser("create", help="make a local account")
    create.add_argument("login")
    create.add_argument("--admin", action="store_true", help="a server administrator")
    create.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    create.set_defaults(func=cmd_users_create)
    password = users.add_parser("password", help="set a local account's password")
    password.add_argument("login")
    password.add_argument("--password-stdin", action="store_true")
    password.set_defaults(func=cmd_users_password)
    users.add_parser("list", help="list accounts").set_defaults(func=cmd_users_list)
    disable = users.add_parser("disable", help="stop an account (its sessions and tokens)")
    disable.add_argument("login", help="LOGIN, local:LOGIN or github:LOGIN")
    disable.add_argument("--enable", action="store_true", help="undo")
    disable.set_defaults(func=cmd_users_disable)
    _add_repos(sub)
    _add_tokens(sub)
    login = sub.add_parser("login", help="get a personal API token for the CLI and keep it")
    login.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    login.add_argument(
        "--with-token", action="store_true", help="read a token made on the web page from stdin"
    )
    login.add_argument("--login", help="local account (default: asked)")
    login.add_argument("--password-stdin", action="store_true")
    login.add_argument("--name", default="labci CLI", help="the token's name")
    login.add_argument("--scope", choices=SCOPES, default="write")
    login.add_argument("--expires-days", type=int, default=DEFAULT_DAYS)
    login.set_defaults(func=cmd_login)
    logout = sub.add_parser("logout", help="revoke and forget the stored token")
    logout.add_argument("--server", help="server URL (default LABCI_PUBLIC_URL)")
    logout.set_defaults(func=cmd_logout)


def _add_repos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    repos = sub.add_parser("repos", help="repositories and who may do what").add_subparsers(
        dest="repos_command", required=True
    )
    repos.add_parser("list", help="list repositories").set_defaults(func=cmd_repos_list)
    grant = repos.add_parser("grant", help="give a user a permission on a repository")
    grant.add_argument("repo", help="OWNER/REPO or a bare repository's path")
    grant.add_argument("user", help="LOGIN, local:LOGIN or github:LOGIN")
    grant.add_argument("level", choices=LEVELS, help="none removes the grant")
    grant.set_defaults(func=cmd_repos_grant)
    visibility = repos.add_parser("visibility", help="make a local repository public or private")
    visibility.add_argument("repo")
    visibility.add_argument("visibility", choices=("public", "private"))
    visibility.set_defaults(func=cmd_repos_visibility)
    forks = repos.add_parser(
        "fork-approval",
        help="which fork pull requests wait for a writer's approval: all (default), "
        "first-time (first-time contributors only) or none",
    )
    forks.add_argument("repo")
    forks.add_argument("policy", choices=("all", "first-time", "none"))
    forks.set_defaults(func=cmd_repos_fork_approval)
    budget = repos.add_parser(
        "bisect-budget",
        help="how many bisection runs the repository may start in 24 hours, to find the commit "
        "behind a change of its default branch (0: off; default: LABCI_BISECT_RUNS_PER_DAY)",
    )
    budget.add_argument("repo")
    budget.add_argument("runs", help="a number of runs, or 'default'")
    budget.set_defaults(func=cmd_repos_bisect_budget)
    limit = repos.add_parser(
        "job-limit",
        help="how many of the repository's jobs may be queued or running at once "
        "(default: LABCI_REPOSITORY_MAX_JOBS; 0 holds all its jobs back)",
    )
    limit.add_argument("repo")
    limit.add_argument("jobs", help="a number of jobs, or 'default'")
    limit.set_defaults(func=cmd_repos_job_limit)


def _add_tokens(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tokens = sub.add_parser("tokens", help="personal API tokens (on the server)").add_subparsers(
        dest="tokens_command", required=True
    )
    create = tokens.add_parser("create", help="make a token for a user and print it once")
    create.add_argument("--user", required=True)
    create.add_argument("--name", default="made with labci tokens create")
    create.add_argument("--scope", choices=SCOPES, default="write")
    create.add_argument("--expires-days", type=int, default=DEFAULT_DAYS)
    create.add_argument("--no-expiry", action="store_true")
    create.set_defaults(func=cmd_tokens_create)
    listing = tokens.add_parser("list", help="a user's tokens (never their secrets)")
    listing.add_argument("--user", required=True)
    listing.set_defaults(func=cmd_tokens_list)
    revoke = tokens.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_tokens_revoke)
