"""Rate limits of the REST API, shared by every web node (counters in Redis).

Who: the account of a valid ``X-API-Key``, else the client IP (``request.remote_addr``;
behind proxies set ``TRUSTED_PROXIES=N`` and werkzeug's ProxyFix takes the client from
the N-th ``X-Forwarded-For`` entry from the right, the one the nearest trusted proxy
wrote; without it the header is never read, so a client cannot pick its own bucket).

What: every ``/api`` request is a read or a write (POST, PUT, PATCH, DELETE); writes
have their own, stricter, limits; a batch costs one per order in it. Health, metrics and
the docs are not limited (probes and scrapes must always get through).

How: ``RATE_LIMITS`` (see ``parse_config``) in the ``limits`` library's notation
(``100/10seconds``), counted with its Redis storage in fixed windows aligned to the
clock: one round trip per request for all its limits (the storage's INCRBY+EXPIRE script),
and the window's end is known without asking Redis, so every response carries
``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds; IETF
draft) of its tightest limit. Over a limit: 429 ``RATE_LIMITED`` with ``Retry-After``, the
request's cost is given back (a refused request uses nothing) and the view never runs,
so nothing changes. ``/metrics`` counts refusals by route and scope.

The WebSocket limits (frames per connection, connections per IP) are applied by
``app.ws`` with ``ws_frames`` and ``ws_connections`` from the same setting.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import limits
import orjson
import redis
from flask import Flask, Request, g, request
from limits.storage import RedisClusterStorage, storage_from_string
from prometheus_client import Counter
from werkzeug.middleware.proxy_fix import ProxyFix

from app.errors import ApiError
from settings import DEFAULT_RATE_LIMITS
from store import ratelimits
from store.ratelimits import ConnectionSlots  # noqa: F401  (app.ws imports it here)

SCOPES = ("read", "write", "ws_frames", "ws_connections")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
EXEMPT_PATHS = {"/api/health", "/metrics", "/api/docs", "/api/openapi.json",
                "/api/asyncapi.json", "/ws"}
KEY_PREFIX = ratelimits.KEY_PREFIX
_EXTENSION = "rate_limiter"

log = logging.getLogger(__name__)
RATE_LIMITED = Counter(
    "matching_rate_limited_total",
    "Requests refused with 429 RATE_LIMITED, by route and scope (read, write).",
    ["route", "scope"])


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class RateLimits:
    """Parsed ``RATE_LIMITS``; ``enabled`` False for ``off``."""

    enabled: bool
    read: tuple = ()
    write: tuple = ()
    ws_frames: tuple = ()
    ws_connections: int = 0


def parse_config(text: str) -> RateLimits:
    """``off``, or space-separated ``scope=limits`` (scopes: read, write, ws_frames in the
    limits notation, several joined with ``,``; ws_connections a plain count). Scopes not
    named keep their defaults (``DEFAULT_RATE_LIMITS``)."""
    text = (text or "").strip()
    if text.lower() in {"off", "false", "0", "none"}:
        return RateLimits(enabled=False)
    given = {}
    for part in (DEFAULT_RATE_LIMITS + " " + text).split():
        scope, sep, value = part.partition("=")
        if not sep or scope not in SCOPES:
            raise ConfigError(f"RATE_LIMITS: {part!r} is not scope=limits with scope one of "
                              f"{', '.join(SCOPES)}")
        given[scope] = value
    try:
        return RateLimits(
            enabled=True,
            read=tuple(limits.parse_many(given["read"])),
            write=tuple(limits.parse_many(given["write"])),
            ws_frames=tuple(limits.parse_many(given["ws_frames"])),
            ws_connections=int(given["ws_connections"]),
        )
    except ValueError as exc:
        raise ConfigError(f"RATE_LIMITS: {exc}") from None


def storage_uri(settings) -> str:
    """Where the counters live: ``RATE_LIMIT_REDIS_URL`` (any ``limits`` Redis scheme), else
    the store's own Redis as the limits library names it: ``REDIS_URL``, the Sentinel
    primary (``redis+sentinel://``, so a failover moves the counters with the store and a
    read-only node counts on the primary), or the Cluster (``redis+cluster://``)."""
    if settings.rate_limit_redis_url:
        return settings.rate_limit_redis_url
    if settings.redis_cluster_nodes:
        return "redis+cluster://" + ",".join(settings.redis_cluster_nodes)
    if settings.redis_sentinels:
        return (f"redis+sentinel://{','.join(settings.redis_sentinels)}/"
                f"{settings.redis_sentinel_master}")
    return settings.redis_url


class Limiter:
    """Fixed windows aligned to the clock, on the ``limits`` Redis storage."""

    def __init__(self, uri: str, config: RateLimits):
        self.config = config
        self.warned = False
        self.storage = storage_from_string(uri, key_prefix=KEY_PREFIX, socket_timeout=5,
                                           socket_connect_timeout=2)
        # redis-py's cluster pipelines refuse EVALSHA: on a Cluster, one script call per
        # limit (each key its own slot), not the one-round-trip pipeline.
        self.one_by_one = isinstance(self.storage, RedisClusterStorage)

    def hit(self, scope: str, identity: str, items, cost: int = 1, now: float | None = None):
        """Count ``cost`` against every limit of ``items``. Returns ``(allowed, tightest)``
        with ``tightest`` = (limit, remaining, reset seconds) of the limit nearest to
        running out (or the one refused). A refused hit gives its cost back."""
        now = time.time() if now is None else now
        windows = []
        for item in items:
            length = item.get_expiry()
            window = int(now // length)
            windows.append((item, length, window,
                            f"{scope}:{identity}:{item.amount}/{length}:{window}"))
        counts = self._incr_all([(key, length) for _, length, _, key in windows], cost)
        tightest = None
        for (item, length, window, _), count in zip(windows, counts, strict=True):
            remaining = item.amount - count
            reset = max(1, math.ceil((window + 1) * length - now))
            if remaining < 0:
                for _, length_, _, key in windows:  # nothing used: the request does not run
                    self.storage.incr(key, length_, amount=-cost)
                return False, (item, 0, reset)
            if tightest is None or remaining < tightest[1]:
                tightest = (item, remaining, reset)
        return True, tightest

    def _incr_all(self, keys_: list[tuple[str, int]], cost: int) -> list[int]:
        """The storage's INCRBY+EXPIRE script on every key, in one round trip
        (``store.ratelimits.incr_expire_all``)."""
        if len(keys_) == 1 or self.one_by_one:
            return [self.storage.incr(key, length, amount=cost) for key, length in keys_]
        return ratelimits.incr_expire_all(self.storage, keys_, cost)


def _identity(req: Request, settings) -> str:
    key = req.headers.get("X-API-Key")
    if key:
        account = settings.api_keys.get(key)
        if account is not None:
            return "acct:" + account
    return "ip:" + (req.remote_addr or "unknown")


def _cost(req: Request) -> int:
    """One per request; a batch costs one per order (the body is parsed again by the view;
    a body that is not a batch costs one and gets its 400 there)."""
    if req.endpoint == "orders.place_batch":
        try:
            orders = orjson.loads(req.get_data(cache=True)).get("orders")
            if isinstance(orders, list) and orders:
                return len(orders)
        except (orjson.JSONDecodeError, AttributeError):
            pass
    return 1


def _describe(item) -> str:
    length = item.get_expiry()
    return f"{item.amount} per {length} s" if length != 1 else f"{item.amount} per second"


def get_limiter(app: Flask) -> Limiter | None:
    return app.extensions.get(_EXTENSION)


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    if settings.trusted_proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    config = parse_config(settings.rate_limits)
    if not config.enabled:
        return
    limiter = app.extensions[_EXTENSION] = Limiter(storage_uri(settings), config)

    @app.before_request
    def _rate_limit():
        # The request looked up once (app.api.common says what a lookup costs).
        req = request._get_current_object()
        path = req.path
        if path in EXEMPT_PATHS or not path.startswith("/api/"):
            return None
        scope = "write" if req.method in WRITE_METHODS else "read"
        try:
            allowed, tightest = limiter.hit(scope, _identity(req, settings),
                                            getattr(config, scope), _cost(req))
        except redis.exceptions.ReadOnlyError:
            # Counting on a replica (a read-only node without RATE_LIMIT_REDIS_URL): serve
            # unlimited rather than fail every request; say so once per process.
            if not limiter.warned:
                limiter.warned = True
                log.warning("rate limits off: %s is a read-only replica; set "
                            "RATE_LIMIT_REDIS_URL to the primary", "the limiter's Redis")
            return None
        g.rate_limit = tightest
        if not allowed:
            item, _, reset = tightest
            rule = req.url_rule.rule if req.url_rule is not None else "unknown"
            RATE_LIMITED.labels(rule, scope).inc()
            raise ApiError(429, "RATE_LIMITED",
                           f"Rate limit exceeded: {_describe(item)} for {scope}s; "
                           f"retry in {reset} s.")
        return None

    @app.after_request
    def _headers(response):
        tightest = g.pop("rate_limit", None)
        if tightest is not None:
            item, remaining, reset = tightest
            response.headers["RateLimit-Limit"] = str(item.amount)
            response.headers["RateLimit-Remaining"] = str(max(0, remaining))
            response.headers["RateLimit-Reset"] = str(reset)
            if response.status_code == 429:
                response.headers["Retry-After"] = str(reset)
        return response


def config_for(app: Flask) -> RateLimits:
    """The app's parsed RATE_LIMITS (the WebSocket limits read it too)."""
    config = app.extensions.get("rate_limit_config")
    if config is None:
        config = app.extensions["rate_limit_config"] = parse_config(
            app.config["SETTINGS"].rate_limits)
    return config


class FrameBudget:
    """Client frames per connection (``ws_frames``), counted in the connection's own
    process (a connection lives in one). ``take()``: "ok"; "refuse" (the first frame over
    the limit in a window: answer RATE_LIMITED); "drop" (later ones: ignored, no answer,
    so a flood is not echoed); "close" (the client kept flooding: twice the limit in a
    window)."""

    def __init__(self, items):
        self.items = items
        self.windows = [(-1, 0, 0)] * len(items)  # (window, frames, refused)

    def take(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        verdict = "ok"
        for i, item in enumerate(self.items):
            window = int(now // item.get_expiry())
            seen, frames, refused = self.windows[i]
            if seen != window:
                frames = refused = 0
            frames += 1
            if frames > item.amount:
                refused += 1
                if refused > item.amount:
                    verdict = "close"
                elif verdict == "ok":
                    verdict = "refuse" if refused == 1 else "drop"
            self.windows[i] = (window, frames, refused)
        return verdict



