"""Prometheus metrics of the server and the worker.

Two kinds, told apart by where they come from:
- this process's own, kept by `prometheus_client` in its default registry: the webhook
  answer latency (`WebhookTimer`, server only) and the process's own figures. Every
  replica and worker has its own; dashboards `sum()` them across instances.
- the database's, computed at scrape time (`database_families`): queue depth per label
  and per runner, outbox backlog and dead letters, events by state, runners online, job
  wait and run durations by outcome. They are the same on every replica; dashboards take
  `max()` of them.

The worker serves the first kind on `LABCI_WORKER_METRICS_ADDRESS` with prometheus_client's
own HTTP server; the API server serves both on `/metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..db.queries.operations import DurationHistogram, OperationsSnapshot
from ..errors import ConfigError
from ..settings import process_metrics_shared

WEBHOOK_SECONDS = Histogram(
    "labci_webhook_response_seconds",
    "Time from a forge delivery's arrival to labci's answer, by forge and status code.",
    ["forge", "code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_PREFIX = "/webhooks/"


class WebhookTimer:
    """ASGI middleware timing the answers to `/webhooks/<forge>` (GitHub waits 10 s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(WEBHOOK_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = "500"

        async def timed_send(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            forge = path[len(WEBHOOK_PREFIX) :].split("/", 1)[0] or "unknown"
            WEBHOOK_SECONDS.labels(forge=forge[:32], code=code).observe(
                time.perf_counter() - started
            )


class _Snapshot(Collector):
    def __init__(
        self, families: list[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]
    ) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        return self.families


def database_families(
    snap: OperationsSnapshot,
) -> list[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
    pending = GaugeMetricFamily(
        "labci_jobs_pending",
        "Jobs ready to run that no runner has taken, by runs-on label.",
        labels=["label"],
    )
    for label, n in sorted(snap.pending_by_label.items()):
        pending.add_metric([label], n)
    queued = GaugeMetricFamily(
        "labci_runner_jobs",
        "Jobs assigned to a runner, queued or running.",
        labels=["runner", "state"],
    )
    for state, counts in (("queued", snap.queued_by_runner), ("running", snap.running_by_runner)):
        for runner, n in sorted(counts.items()):
            queued.add_metric([runner, state], n)
    outbox = GaugeMetricFamily(
        "labci_outbox_messages",
        "Forge messages by kind and status (pending: the backlog; dead: refused for good).",
        labels=["kind", "status"],
    )
    for (kind, status), n in sorted(snap.outbox_by_status.items()):
        outbox.add_metric([kind, status], n)
    events = CounterMetricFamily(
        "labci_events", "Forge events stored, by state (planned, failed, ...).", labels=["state"]
    )
    for state, n in sorted(snap.events_by_state.items()):
        events.add_metric([state], n)
    online = GaugeMetricFamily(
        "labci_runners_online", "Runners not revoked that sent a heartbeat within a lease."
    )
    online.add_metric([], snap.runners_online)
    registered = GaugeMetricFamily("labci_runners_registered", "Runners not revoked.")
    registered.add_metric([], snap.runners_registered)
    return [
        pending,
        queued,
        outbox,
        events,
        online,
        registered,
        _histogram(
            "labci_job_wait_seconds",
            "From planning to start, finished jobs by outcome.",
            snap.job_wait,
        ),
        _histogram(
            "labci_job_run_seconds", "From start to end, finished jobs by outcome.", snap.job_run
        ),
    ]


def _histogram(
    name: str, doc: str, by_outcome: dict[str, DurationHistogram]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["outcome"])
    for outcome, hist in sorted(by_outcome.items()):
        buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in hist.buckets]
        family.add_metric([outcome], buckets, hist.total_s)
    return family


def exposition(snap: OperationsSnapshot | None) -> bytes:
    """This process's metrics, then the database's (None: the database did not answer).
    Under `labci serve --workers N` (PROMETHEUS_MULTIPROC_DIR set), the processes' own
    metrics are summed over all of them, whichever answers the scrape."""
    if process_metrics_shared():
        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        own = generate_latest(shared)
    else:
        own = generate_latest(REGISTRY)
    if snap is None:
        return own
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(database_families(snap)))
    return own + generate_latest(registry)


def serve_metrics(address: str) -> None:
    """Serve this process's metrics on `host:port` from a daemon thread."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"LABCI_WORKER_METRICS_ADDRESS {address!r}: expected HOST:PORT")
    start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0")  # noqa: S104
