"""A PostgreSQL connection of the test's own, to hold locks, watch labci's backends and end
them (fault injection from outside the processes under test: no hook in labci's code).

The connection lives on an event loop in a thread of its own, so a synchronous test can
hold a lock across calls while labci's real processes run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import asyncpg


class PgControl:
    def __init__(self, database_url: str) -> None:
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._conn: asyncpg.Connection = self._run(asyncpg.connect(self.dsn))

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def execute(self, sql: str, *args: Any) -> str:
        return str(self._run(self._conn.execute(sql, *args)))

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._run(self._conn.fetch(sql, *args))]

    def value(self, sql: str, *args: Any) -> Any:
        return self._run(self._conn.fetchval(sql, *args))

    def lock_table(self, table: str) -> None:
        """Open a transaction that blocks every write to `table` (reads go on) until
        `release()`."""
        self.execute("BEGIN")
        self.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')

    def release(self) -> None:
        self.execute("COMMIT")

    def blocked_writers(self, statement_prefix: str) -> list[int]:
        """Other backends of this database waiting for a lock while running a statement
        that starts with `statement_prefix` (e.g. 'INSERT INTO outbox')."""
        self.execute("SELECT pg_stat_clear_snapshot()")  # fresh in a transaction too
        found = self.rows(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        prefix = statement_prefix.lower()
        return [r["pid"] for r in found if r["query"].lstrip().lower().startswith(prefix)]

    def alive(self, pid: int) -> bool:
        self.execute("SELECT pg_stat_clear_snapshot()")
        return bool(self.value("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid))

    def terminate_others(self) -> int:
        """`pg_terminate_backend` on every other backend of this database; how many."""
        return int(
            self.value(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )

    def close(self) -> None:
        try:
            self._run(self._conn.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
