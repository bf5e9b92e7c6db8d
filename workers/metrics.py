"""The matching worker's own metrics, served on ``WORKER_METRICS_PORT`` (0: off).

The worker is one process (solo pool), so a plain registry and
``prometheus_client.start_http_server`` suffice; Prometheus scrapes each worker
beside the web nodes. Everything is observed once per committed batch
(``observe_batch``), after the MULTI/EXEC, off the accept path.

accept->processed latency = commit time (worker clock, just before the MULTI/EXEC)
minus the command's accept timestamp (stamped by the accept script). Both clocks are
the service's hosts' clocks: keep them NTP-synchronised or the figure is skewed.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram, start_http_server

from engine.types import CancelOrder

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)

COMMANDS = Counter(
    "matching_worker_commands_total", "Commands applied and committed, by kind.",
    ["symbol", "kind"])
BATCH_SIZE = Histogram(
    "matching_worker_batch_commands", "Commands per committed batch.", ["symbol"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
COMMIT_SECONDS = Histogram(
    "matching_worker_commit_seconds", "Time of one batch's MULTI/EXEC commit.", ["symbol"],
    buckets=LATENCY_BUCKETS)
ACCEPT_TO_PROCESSED = Histogram(
    "matching_accept_to_processed_seconds",
    "From a command's acceptance (journal timestamp) to the commit of its result.",
    ["symbol"], buckets=LATENCY_BUCKETS)
FENCED = Counter(
    "matching_worker_fenced_total", "Commits refused by the lease/cursor fence.", ["symbol"])


def observe_batch(symbol: str, batch, committed_ms: int, commit_seconds: float) -> None:
    """One committed batch of ``(command, request_id)``."""
    latency = ACCEPT_TO_PROCESSED.labels(symbol)
    places = 0
    for command, _ in batch:
        latency.observe(max(0, committed_ms - command.timestamp) / 1000)
        places += not isinstance(command, CancelOrder)
    if places:
        COMMANDS.labels(symbol, "place").inc(places)
    if places < len(batch):
        COMMANDS.labels(symbol, "cancel").inc(len(batch) - places)
    BATCH_SIZE.labels(symbol).observe(len(batch))
    COMMIT_SECONDS.labels(symbol).observe(commit_seconds)


def start_server(port: int) -> None:
    """Serve /metrics on ``port`` (all interfaces) in a daemon thread; never fails the worker."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:  # e.g. a second worker on one host with the same port
        log.warning("worker metrics: cannot listen on :%d (%s); metrics off", port, exc)
        return
    log.info("worker metrics on :%d/metrics", port, extra={"metrics_port": port})
