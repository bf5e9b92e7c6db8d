"""``GET /metrics`` (Prometheus text format) and the web node's request hooks.

Design (docs/deployment.md "Metrics" has the operator's view):

* Request-path metrics (orders accepted / rejected, accept latency, WebSocket clients)
  are prometheus-client objects, no Redis round trip. Refused requests and latency are
  recorded in ``after_request`` / ``teardown_request`` hooks; the order views count
  what they accept (``count_accepted``, ``count_item_rejected``), as they have it at
  hand.
* Under gunicorn they run in multiprocess mode: gunicorn.conf.py points
  ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any worker starts and calls
  ``multiprocess.mark_process_dead`` when one exits, so any worker answering the scrape
  reports the sum over all workers of this node. Without that variable (tests, the
  Flask dev server) the process's default registry is used.
* Per-symbol state that lives in Redis (journal and applied sequences, queue lag,
  matcher heartbeat age, lease, trades) is read at scrape time by ``StoreCollector``:
  one pipelined round trip per scrape. Every web node reports the same values, so
  aggregate them with ``max by (symbol)``, never ``sum``.
* Accept->processed latency is measured by the matching worker at commit and served
  by the worker's own endpoint (``workers/metrics.py``, ``WORKER_METRICS_PORT``).
"""

from __future__ import annotations

import logging
import os
import time

import orjson
import redis
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from app.redis_client import get_redis
from store import read

log = logging.getLogger(__name__)
access_log = logging.getLogger("app.access")
bp = Blueprint("metrics", __name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
ORDER_ENDPOINTS = {"orders.place_order": "place", "orders.place_batch": "batch",
                   "orders.cancel_order": "cancel"}
QUIET_PATHS = {"/metrics", "/api/health"}  # probes: access-logged at DEBUG only
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

ORDERS_ACCEPTED = Counter(
    "matching_orders_accepted_total",
    "Orders accepted and journaled (202/201), by symbol and order type.",
    ["symbol", "order_type"])
ORDERS_REJECTED = Counter(
    "matching_orders_rejected_total",
    "Order writes refused (place, batch item, cancel), by HTTP status and error code.",
    ["op", "status", "code"])
ACCEPT_LATENCY = Histogram(
    "matching_accept_latency_seconds",
    "Web time of POST /api/orders and /api/orders/batch, request in to response out "
    "(wait=true requests, which include matching, are labelled wait=\"true\").",
    ["endpoint", "wait"], buckets=LATENCY_BUCKETS)
OVERLOADED = Counter(
    "matching_overloaded_total",
    "Requests (surface=rest) and WebSocket subscribes or backfills (surface=ws) refused "
    "because no Redis connection came free within REDIS_POOL_WAIT_MS (503 OVERLOADED).",
    ["surface"])
WS_CLIENTS = Gauge(
    "matching_ws_clients", "Open /ws connections on this node.",
    multiprocess_mode="livesum")


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


# ------------------------------------------------------------------ scrape-time collectors


class _DefaultRegistry:
    """The process's default registry as a collector (single-process mode)."""

    def collect(self):
        return REGISTRY.collect()


class StoreCollector:
    """Per-symbol gauges read from Redis at scrape time (one pipelined round trip)."""

    def __init__(self, r: redis.Redis, settings):
        self.r, self.settings = r, settings

    def collect(self):
        symbols = self.settings.symbols
        up = GaugeMetricFamily("matching_store_up", "1 if this node reached Redis on scrape.")
        try:
            states = read.matcher_states(self.r, symbols)
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now_ms = time.time() * 1000
        stale_s = self.settings.heartbeat_stale_seconds
        accepted = CounterMetricFamily(
            "matching_journal_commands", "Commands accepted into the journal (sequence).",
            labels=["symbol"])
        applied = CounterMetricFamily(
            "matching_applied_commands", "Commands the matcher committed (applied cursor).",
            labels=["symbol"])
        lag = GaugeMetricFamily(
            "matching_queue_lag", "Commands accepted but not yet applied.", labels=["symbol"])
        age = GaugeMetricFamily(
            "matching_worker_heartbeat_age_seconds",
            "Seconds since the symbol's matcher last wrote its heartbeat (absent: never).",
            labels=["symbol"])
        alive = GaugeMetricFamily(
            "matching_worker_up",
            f"1 if the symbol's heartbeat is younger than {stale_s:g}s (health threshold).",
            labels=["symbol"])
        lease = GaugeMetricFamily(
            "matching_worker_lease_held", "1 if a matcher holds the symbol's writer lease.",
            labels=["symbol"])
        trades = CounterMetricFamily(
            "matching_trades", "Trades executed (the gap-free trade sequence).",
            labels=["symbol"])
        for s, (seq, done, beat, tseq, owned) in zip(symbols, states, strict=True):
            accepted.add_metric([s], seq)
            applied.add_metric([s], done)
            lag.add_metric([s], seq - done)
            trades.add_metric([s], tseq)
            lease.add_metric([s], 1 if owned else 0)
            if beat:
                beat_age = max(0.0, (now_ms - beat) / 1000)
                age.add_metric([s], beat_age)
                alive.add_metric([s], 1 if beat_age <= stale_s else 0)
            else:
                alive.add_metric([s], 0)
        yield from (accepted, applied, lag, age, alive, lease, trades)


@bp.get("/metrics")
def metrics():
    registry = CollectorRegistry(auto_describe=False)
    if _multiprocess():
        MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    registry.register(StoreCollector(get_redis(), current_app.config["SETTINGS"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# ------------------------------------------------------------------ request hooks


def count_accepted(counts: dict[tuple[str, str], int]) -> None:
    """Orders accepted and journaled, ``{(symbol, orderType): how many}`` (app.trading, per
    call: a batch of 100 makes one increment per kind instead of 100, each a label lookup
    and a write to the multiprocess file under its lock, 2.0 us: ~2 % of the batch's web
    CPU per order; micro-loop under ``monkey.patch_all``, ``bench.load --mode batch``)."""
    for (symbol, order_type), n in counts.items():
        ORDERS_ACCEPTED.labels(symbol, order_type).inc(n)


def count_overloaded(surface: str) -> None:
    """A request or subscribe refused for want of a Redis connection (app.errors, app.ws)."""
    OVERLOADED.labels(surface).inc()


def count_item_rejected(code: str) -> None:
    """A batch item refused while the batch itself was accepted."""
    ORDERS_REJECTED.labels("batch_item", "400" if code == "VALIDATION_ERROR" else "429",
                           code).inc()


def _count_refused(op: str, response) -> None:
    if response.status_code >= 400:
        ORDERS_REJECTED.labels(op, str(response.status_code), _error_code(response)).inc()


def _error_code(response) -> str:
    try:
        return orjson.loads(response.get_data())["error"]["code"]
    except Exception:
        return "UNKNOWN"


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    def _start_clock():
        # The start time on the request object itself, which _observe has at hand: no
        # lookup of g in either hook (app.api.common says what a lookup costs).
        req = request._get_current_object()
        req._metrics_t0 = time.perf_counter()
        if req.path == "/ws" and req.headers.get("Upgrade", "").lower() == "websocket":
            WS_CLIENTS.inc()
            g._metrics_ws = True

    # First of the before_request hooks, so requests refused by another hook (the
    # read-only guard) are timed too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)

    @app.after_request
    def _observe(response):
        # The request looked up once (each proxy access is a context lookup), and the
        # access line without Logger.log's findCaller stack walk (makeRecord + handle is
        # the rest of what it does; the line names no source line, see logging_setup):
        # this hook 46 -> 31 us per POST with the line formatted once for both handlers
        # (logging_setup.JsonFormatter), ~1.5 % of the web's CPU per single order; micro-
        # loop of the hook under monkey.patch_all, and ``flock /tmp/heavy.lock
        # .venv/bin/python -m bench.load --mode single --seconds 10`` (README).
        try:
            req, status = request._get_current_object(), response.status_code
            t0 = getattr(req, "_metrics_t0", None)
            elapsed = time.perf_counter() - t0 if t0 is not None else None
            op = ORDER_ENDPOINTS.get(req.endpoint)
            if op is not None:
                _count_refused(op, response)
                if op != "cancel" and elapsed is not None and status < 400:
                    wait = "true" if req.args.get("wait") == "true" else "false"
                    ACCEPT_LATENCY.labels(op, wait).observe(elapsed)
            # INFO for writes and errors (the lines an operator follows by request id),
            # DEBUG for successful reads and probes (the bulk of the traffic).
            method, path = req.method, req.path
            level = logging.INFO if (method in WRITE_METHODS or status >= 400) else logging.DEBUG
            if path in QUIET_PATHS:
                level = logging.DEBUG
            if access_log.isEnabledFor(level):
                access_log.handle(access_log.makeRecord(
                    access_log.name, level, "(unknown file)", 0, "%s %s %s",
                    (method, path, status), None, extra={
                        "method": method, "path": path, "status": status,
                        "duration_ms": round(elapsed * 1000, 3)
                        if elapsed is not None else None}))
        except Exception:  # metrics never break a response
            log.exception("metrics hook failed")
        return response

    @app.teardown_request
    def _ws_closed(_exc):
        if g.pop("_metrics_ws", False):
            WS_CLIENTS.dec()
