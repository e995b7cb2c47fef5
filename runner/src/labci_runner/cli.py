"""`labci-runner register`, `labci-runner start` and `labci-runner health`.

Settings come from the environment (see settings.py); `register` options override them.
Problems a person can fix print one line naming the variable, without a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib.metadata import version
from typing import Any

import pydantic

from labci_runner import agent, telemetry
from labci_runner.errors import LabciRunnerError
from labci_runner.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labci-runner", description="labci runner agent")
    parser.add_argument(
        "--version", action="version", version=f"labci-runner {version('labci-runner')}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register", help="trade a registration token for a runner token")
    reg.add_argument("--server-url", help="overrides LABCI_SERVER_URL")
    reg.add_argument("--token", help="registration token; overrides LABCI_REGISTRATION_TOKEN")
    reg.add_argument("--labels", help="comma-separated; overrides LABCI_RUNNER_LABELS")
    reg.add_argument("--name", help="overrides LABCI_RUNNER_NAME")
    reg.add_argument("--slots", type=int, help="overrides LABCI_RUNNER_SLOTS")
    commands.add_parser("start", help="take and run jobs until SIGTERM/SIGINT")
    commands.add_parser(
        "health", help="exit 0 if this runner's heartbeats get through (for HEALTHCHECK)"
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "server_url": "server_url",
        "token": "registration_token",
        "labels": "labels",
        "name": "name",
        "slots": "slots",
    }
    return {field: getattr(args, opt) for opt, field in names.items() if getattr(args, opt, None)}


def _load_settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings(**overrides)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SystemExit(f"labci-runner: {where}: {first['msg']}") from None


async def _run(command: str, settings: Settings) -> None:
    if command == "register":
        identity = await agent.register(settings)
        print(f"registered runner {identity.runner_id} on queue {identity.queue_name}")
    else:
        await agent.start(settings)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = _load_settings(_overrides(args))
    telemetry.configure_logging(settings.log_format)
    if args.command == "health":
        healthy, said = telemetry.check_health(settings)
        print(said)
        sys.exit(0 if healthy else 1)
    try:
        asyncio.run(_run(args.command, settings))
    except LabciRunnerError as exc:
        print(f"labci-runner: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
