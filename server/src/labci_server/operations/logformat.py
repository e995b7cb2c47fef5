"""How `labci serve` and `labci worker` log: readable lines, or one JSON object per line
(`LABCI_LOG_FORMAT=json`), both on stderr.

uvicorn's access log goes through the same handler, without query strings (a badge URL's
`?token=` must not reach a log) and without the probes and runner heartbeats that would
drown everything else at INFO (`QUIET_PATHS`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/api/v1/runners/heartbeat")
ACCESS_LOGGER = "uvicorn.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One object per record: time (RFC 3339, UTC), level, logger, message, and for the
    access log the request's fields; `exception` holds a traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (
            record.name == ACCESS_LOGGER
            and isinstance(record.args, tuple)
            and len(record.args) == 5
        ):
            client, method, path, version, status = record.args
            entry.update(client=client, method=method, path=path, http=version, status=status)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class AccessFilter(logging.Filter):
    """Drops probe and heartbeat requests; strips query strings from the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != ACCESS_LOGGER or not isinstance(record.args, tuple):
            return True
        if len(record.args) != 5:
            return True
        client, method, path, version, status = record.args
        path = str(path).split("?", 1)[0]
        if path in QUIET_PATHS:
            return False
        record.args = (client, method, path, version, status)
        return True


def configure_logging(log_format: str, level: int) -> None:
    """The root handler every logger (ours, uvicorn's, arq's) writes through."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    handler.addFilter(AccessFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
