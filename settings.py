"""Service settings: defaults in code, overridden by the environment in one place.

Nothing else reads ``os.environ``: the web app, the worker and the tools call
``load_settings()`` (or tests pass a ``Settings`` of their own).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from decimal import Decimal

# The project's own Redis (Procfile `redis`, redis.conf) listens here, never on 6379.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"

# Rate limits (app/ratelimit.py): per account (API key) or client IP, shared by all web
# nodes. Writes are stricter than reads; a batch counts its orders.
DEFAULT_RATE_LIMITS = ("read=1200/minute write=100/10seconds,20000/day "
                       "ws_frames=20/second ws_connections=50")
# The history archive (archive/): an embedded SQLite file by default, PostgreSQL in production.
DEFAULT_ARCHIVE_URL = "sqlite:///" + os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "var", "archive.sqlite3")

DEFAULT_MARKETS = (
    {"symbol": "BTC-USD", "tickSize": "0.01", "lotSize": "0.001"},
    {"symbol": "ETH-USD", "tickSize": "0.01", "lotSize": "0.01"},
)


class SettingsError(ValueError):
    """A configuration that cannot work: said at start, in words, instead of a hang."""


@dataclass(frozen=True)
class MarketConfig:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    max_price: Decimal = Decimal("10000000")
    max_quantity: Decimal = Decimal("1000000")


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str | None = None  # defaults to the store's Redis (see ``broker``)
    # Past one Redis (store/connect.py builds the client): REDIS_CLUSTER_NODES (host:port
    # startup nodes: the store is a Redis Cluster), or REDIS_SENTINELS (host:port) with
    # REDIS_SENTINEL_MASTER: the primary is found through Sentinel. Either way REDIS_URL
    # is then not the store.
    redis_cluster_nodes: tuple[str, ...] = ()
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_master: str = "matching"
    # REPLICA_ACKS: every accepted command is on this many replicas (WAIT) before its
    # answer; one not acknowledged within REPLICA_ACK_TIMEOUT_MS answers 503
    # REPLICATION_TIMEOUT (store/replica_acks.py).
    replica_acks: int = 0
    replica_ack_timeout_ms: int = 200
    app_env: str = "development"
    auth_required: bool = False
    read_only: bool = False
    log_level: str = "INFO"
    log_dir: str = "logs"
    port: int = 3000
    markets: tuple[MarketConfig, ...] = field(
        default_factory=lambda: tuple(_market(m) for m in DEFAULT_MARKETS)
    )
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> account id
    # Hostile-input limits: each breach is a clear 4xx.
    max_body_bytes: int = 256 * 1024
    max_batch: int = 100
    max_open_orders_per_account: int = 100_000
    # A matcher whose heartbeat is older than this is not alive (health 503).
    heartbeat_stale_seconds: float = 5.0
    max_healthy_lag: int = 10_000
    # Symbols this worker process matches (empty: all markets).
    worker_symbols: tuple[str, ...] = ()
    # Commands applied per transaction at most (the worker batches naturally under load).
    worker_batch: int = 500
    # An idle matcher waits this long on its journal before handing back to Celery: under
    # steady flow commands are applied without a task per burst (and sooner).
    worker_linger_ms: int = 20
    # One drain hands the worker's thread back to Celery after this long (heartbeats, acks).
    worker_max_drain_ms: int = 1000
    # The WebSocket relay gathers what is published over a pause and sends it in one write
    # per client; the pause grows with the sockets served (40 us each), up to this.
    ws_batch_ms: float = 20.0
    # Seconds between the server's pings on each WebSocket; a client that misses a pong
    # is closed. (The capacity test shortens it to hold sockets past it in make test.)
    ws_ping_interval: float = 25.0
    # Redis connections per web process (REST and the WebSocket relay's reads share them)
    # and how long a request waits for a free one before it is answered 503 OVERLOADED.
    # A node opens at most WEB_CONCURRENCY x (redis_pool_size + 2) connections: the pool,
    # the event hub's pub/sub connection and the Celery producer's broker connection
    # (see gunicorn.conf.py for the sizing and the measurements behind it).
    redis_pool_size: int = 32
    redis_pool_wait_ms: int = 10000
    # The worker's own Prometheus endpoint (accept->processed latency etc.); 0: off.
    worker_metrics_port: int = 0
    # RATE_LIMITS: "off", or scope=limits (app/ratelimit.py); TRUSTED_PROXIES: how many
    # proxies in front of the web nodes write X-Forwarded-For (0: never read it).
    rate_limits: str = DEFAULT_RATE_LIMITS
    trusted_proxies: int = 0
    # Where the counters live (default: REDIS_URL); a read-only node on a replica points
    # it at the primary, since a replica cannot count.
    rate_limit_redis_url: str | None = None
    # History (archive/): final orders, their fills, trades and journal entries older than
    # archive_after_seconds move from Redis to archive_url, archive_batch orders per step,
    # one run per symbol every archive_interval_seconds (Celery beat).
    archive_url: str = DEFAULT_ARCHIVE_URL
    archive_after_seconds: float = 3600.0
    archive_batch: int = 1000
    archive_interval_seconds: float = 10.0
    archive_lease_ms: int = 5000  # a mover that died holds its symbol this long at most
    # The worker checkpoints each book every this many commands (0: never); the journal
    # leaves Redis only below the newest checkpoint the mover has verified.
    checkpoint_every: int = 100_000
    # Tests only: kill the worker (SIGKILL) at these points with this probability.
    fault_points: tuple[str, ...] = ()
    fault_probability: float = 0.0

    @property
    def broker(self) -> str:
        """Celery's broker: CELERY_BROKER_URL, else the store's Redis (through Sentinel
        when Sentinels are set). kombu has no Redis Cluster transport, so a Cluster store
        needs a broker of its own (``load_settings`` refuses to start without one)."""
        if self.broker_url:
            return self.broker_url
        if self.redis_cluster_nodes:
            raise SettingsError(CLUSTER_NEEDS_BROKER)
        if self.redis_sentinels:
            return ";".join(f"sentinel://{node}" for node in self.redis_sentinels)
        return self.redis_url

    @property
    def broker_transport_options(self) -> dict:
        """kombu's options for ``broker``: a ``sentinel://`` broker names its master."""
        options: dict = {"visibility_timeout": 30}
        if self.broker.startswith("sentinel://"):
            options["master_name"] = self.redis_sentinel_master
        return options

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(m.symbol for m in self.markets)

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)


CLUSTER_NEEDS_BROKER = (
    "REDIS_CLUSTER_NODES is set but CELERY_BROKER_URL is not: Celery (kombu) has no "
    "Redis Cluster transport, so the broker must be a plain Redis (redis://host:port/0) "
    "or Sentinel (sentinel://host:port;sentinel://host:port) beside the cluster.")


def _nodes(value: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def _market(raw: dict) -> MarketConfig:
    extra = {}
    if "maxPrice" in raw:
        extra["max_price"] = Decimal(str(raw["maxPrice"]))
    if "maxQuantity" in raw:
        extra["max_quantity"] = Decimal(str(raw["maxQuantity"]))
    return MarketConfig(
        symbol=raw["symbol"],
        tick_size=Decimal(str(raw["tickSize"])),
        lot_size=Decimal(str(raw["lotSize"])),
        **extra,
    )


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from the environment (``env`` for tests).

    Markets come from ``MARKETS`` (a JSON list of {symbol, tickSize, lotSize,
    maxPrice?, maxQuantity?}) or ``MARKETS_FILE`` (a file holding that list).
    API keys come from ``API_KEYS`` as ``key:account,key:account``.
    """
    env = os.environ if env is None else env
    app_env = env.get("APP_ENV", "development")
    markets_raw = None
    if env.get("MARKETS"):
        markets_raw = json.loads(env["MARKETS"])
    elif env.get("MARKETS_FILE"):
        with open(env["MARKETS_FILE"]) as fh:
            markets_raw = json.load(fh)
    api_keys = {}
    for pair in filter(None, env.get("API_KEYS", "").split(",")):
        key, _, account = pair.partition(":")
        api_keys[key.strip()] = account.strip()
    settings = Settings(
        redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
        broker_url=env.get("CELERY_BROKER_URL") or None,
        redis_cluster_nodes=_nodes(env.get("REDIS_CLUSTER_NODES")),
        redis_sentinels=_nodes(env.get("REDIS_SENTINELS")),
        redis_sentinel_master=env.get("REDIS_SENTINEL_MASTER") or "matching",
        replica_acks=int(env.get("REPLICA_ACKS") or 0),
        replica_ack_timeout_ms=int(env.get("REPLICA_ACK_TIMEOUT_MS") or 200),
        app_env=app_env,
        auth_required=_bool(env.get("AUTH_REQUIRED"), default=app_env == "production"),
        read_only=_bool(env.get("READ_ONLY")),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        log_dir=env.get("LOG_DIR", "logs"),
        port=int(env.get("PORT", "3000")),
        api_keys=api_keys,
        worker_symbols=tuple(filter(None, env.get("WORKER_SYMBOLS", "").split(","))),
        heartbeat_stale_seconds=float(env.get("HEARTBEAT_STALE_SECONDS") or 5.0),
        worker_metrics_port=int(env.get("WORKER_METRICS_PORT") or 0),
        ws_batch_ms=float(env.get("WS_BATCH_MS") or 20.0),
        ws_ping_interval=float(env.get("WS_PING_INTERVAL") or 25.0),
        rate_limits=env.get("RATE_LIMITS") or DEFAULT_RATE_LIMITS,
        trusted_proxies=int(env.get("TRUSTED_PROXIES") or 0),
        rate_limit_redis_url=env.get("RATE_LIMIT_REDIS_URL") or None,
        archive_url=env.get("ARCHIVE_URL") or DEFAULT_ARCHIVE_URL,
        archive_after_seconds=float(env.get("ARCHIVE_AFTER_SECONDS") or 3600),
        archive_batch=int(env.get("ARCHIVE_BATCH") or 1000),
        archive_interval_seconds=float(env.get("ARCHIVE_INTERVAL_SECONDS") or 10),
        archive_lease_ms=int(env.get("ARCHIVE_LEASE_MS") or 5000),
        checkpoint_every=int(env.get("CHECKPOINT_EVERY") or 100_000),
        redis_pool_size=int(env.get("REDIS_POOL_SIZE") or 32),
        redis_pool_wait_ms=int(env.get("REDIS_POOL_WAIT_MS") or 10000),
        fault_points=tuple(filter(None, env.get("FAULT_POINTS", "").split(","))),
        fault_probability=float(env.get("FAULT_PROBABILITY", "0") or 0),
    )
    if markets_raw is not None:
        settings = settings.replace(markets=tuple(_market(m) for m in markets_raw))
    if settings.redis_cluster_nodes and settings.redis_sentinels:
        raise SettingsError("REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: the "
                            "store is either a Redis Cluster or a Sentinel-managed primary")
    settings.broker  # noqa: B018 - a Cluster store without a broker fails here, at start
    return settings
