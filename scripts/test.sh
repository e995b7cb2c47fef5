#!/usr/bin/env bash
# One command from a fresh clone to the whole test suite (lint, types of the wire, tests).
# Uses PostgreSQL and Redis when LABCI_TEST_DATABASE_URL / LABCI_REDIS_URL are set,
# SQLite and an embedded Redis otherwise.
source "$(dirname "$0")/bootstrap.sh"
echo "test: installing GitHub's OpenAPI description and webhook examples (npm ci)…" >&2
npm ci --prefix tests/forge_standin --no-audit --no-fund --silent
# The web UI's front-end packages, against which the vendored copies are checked.
npm ci --prefix server/web-assets --no-audit --no-fund --silent
"${UV[@]}" run --locked ruff check .
"${UV[@]}" run --locked ruff format --check .
"${UV[@]}" run --locked lint-imports
# Two test processes by default (pytest-xdist; LABCI_TEST_WORKERS=0 runs them in this one):
# each gets its own PostgreSQL and Redis database, and the Docker-engine tests share one.
# The slowest tests are listed at the end: where the run's 30 minutes go.
"${UV[@]}" run --locked pytest -n "${LABCI_TEST_WORKERS:-2}" --dist loadgroup --durations=30 "$@"
