"""`python -m forge_standin --repos DIR --port N`: the stand-in as a process of its own.

The benchmark uses this so that the stand-in's latency is not skewed by sharing a GIL
with the process that drives the benchmark.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from .app import create_standin
from .openapi import OpenAPIChecker


def main() -> None:
    parser = argparse.ArgumentParser(prog="forge_standin")
    parser.add_argument("--repos", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args()
    standin = create_standin(args.repos, OpenAPIChecker(), tokens=[args.token])
    uvicorn.run(
        standin.app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        http="h11",
        interface="asgi3",
    )


if __name__ == "__main__":
    main()
