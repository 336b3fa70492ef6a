"""Prometheus metrics. Every process exposes its own (process-local) registry.

- web processes (Daphne): ``GET /metrics`` — sockets open, push latency, and whatever else this
  process did;
- ingest workers: ``CTIBOARD_METRICS_PORT`` serves ``/metrics`` (and ``/healthz``, see
  ctiboard.ingest.health) — events ingested, stream reconnects, leases held; a tenant's series
  leave with the tenant when it is handed over;
- the demo runs everything in one process: its ``/metrics`` shows all of it.

Scrape every process; sum across processes in PromQL. See docs/production.md.
"""

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_INGESTED = Counter(
    "ctiboard_events_ingested",
    "State events received from the CTI API and handed to the store, per tenant.",
    ["tenant"],
)
STREAM_RECONNECTS = Counter(
    "ctiboard_stream_reconnects",
    "State streams that ended or failed and will be reopened, per tenant and resulting status.",
    ["tenant", "status"],
)
SOCKETS_OPEN = Gauge("ctiboard_sockets_open", "Board WebSockets open in this web process.")
PUSH_LATENCY = Histogram(
    "ctiboard_push_latency_seconds",
    "From the worker's channel-layer send (after commit) to this process's fan-out taking the"
    " batch for its board sockets.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SOCKET_WRITERS = Counter(
    "ctiboard_sockets",
    "Board WebSockets opened, by how pushes reach them: direct (frames written to Daphne's"
    " connection) or queued (through ASGI, under any other server).",
    ["writer"],
)
LEASES_HELD = Gauge("ctiboard_ingest_leases_held", "Tenants whose lease this worker holds.")
LIVE_WORKERS = Gauge(
    "ctiboard_ingest_live_workers", "Ingest workers with a live heartbeat, as this worker saw it."
)


def forget_tenant(account: str) -> None:
    """Drop a tenant's series when its streams move to another worker: two workers exporting
    the same tenant would double-count it in every sum."""
    for metric in (EVENTS_INGESTED, STREAM_RECONNECTS):
        metric.remove_by_labels({"tenant": account})


# Set on every live message by ctiboard.live: wall-clock seconds at the send.
SENT_AT = "sent_at"


def stamp() -> float:
    return time.time()


def observe_push(event: Mapping[str, Any]) -> None:
    """Record a pushed message's latency (wall clocks of two hosts: keep them in NTP sync)."""
    sent_at = event.get(SENT_AT)
    if isinstance(sent_at, int | float):
        PUSH_LATENCY.observe(max(0.0, time.time() - sent_at))
