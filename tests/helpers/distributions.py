"""What the runner's distribution must never bring along: the server's own package and its
web and SQL libraries (a lab machine installs the runner alone)."""

from __future__ import annotations

SERVER_ONLY = frozenset(
    {
        "labci-server",
        "fastapi",
        "starlette",
        "sqlmodel",
        "sqlalchemy",
        "aiosqlite",
        "asyncpg",
        "alembic",
        "uvicorn",
    }
)
