"""The one place that turns settings into a redis-py client for the store.

Three kinds of store (settings.py reads the env):
- ``REDIS_URL``: one Redis (``redis.Redis``; a READ_ONLY node points it at a replica);
- ``REDIS_SENTINELS`` + ``REDIS_SENTINEL_MASTER``: a primary found through Sentinel
  (``Sentinel.master_for``; a READ_ONLY node reads a replica, ``replica_for``). After a
  failover the old primary's connections answer READONLY or refuse: redis-py's
  Sentinel-managed connections then ask the Sentinels again, so web and worker follow
  the new primary by themselves;
- ``REDIS_CLUSTER_NODES``: a Redis Cluster (``redis.RedisCluster``; a READ_ONLY node reads
  the replicas of each slot). Every key of one symbol shares the ``{SYMBOL}`` hash slot
  (store/keys.py), so a command's script is single-slot; the client follows MOVED and
  refreshes the slot map after a failover.

Every pool is bounded and waits first-come-first-served (``store.pool``): the web's
REDIS_POOL_SIZE connections per process (per node on a Cluster), a caller that finds
them all busy waits REDIS_POOL_WAIT_MS and then gets 503 OVERLOADED. ``acked=True``
(the web's client) makes every script call wait for REPLICA_ACKS replicas
(``store.replica_acks``).

Used by the web (app/redis_client.py), the matching worker (workers/runtime.py), the
event hub (``events_client``), the archive mover and the tools (``tool_client``).
"""

from __future__ import annotations

import redis
from redis.cluster import ClusterNode, LoadBalancingStrategy
from redis.maint_notifications import MaintNotificationsConfig
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from settings import Settings
from store import replica_acks
from store.pool import waiting_client, waiting_pool_class

# redis-py 8 speaks RESP3 by default and then turns "maintenance notifications" (a Redis
# Enterprise / Cloud feature) to "auto". With them on, its pools skip their check that a
# connection handed out has no unread reply: a connection returned with a reply left
# unread (a command cut off between its write and its read) gave that stale reply to the
# next command, a GET answered PONG (tests/integration/test_pool_ready_check.py). We run
# plain Redis, Sentinel and Cluster: off, so every pool checks again.
NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


class _SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (asks the Sentinels where the primary is, drops connections to a
    demoted one) with the bounded waiting behaviour of a BlockingConnectionPool."""


def _host_port(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    return host or "127.0.0.1", int(port)


def kind(settings: Settings) -> str:
    """``cluster``, ``sentinel`` or ``single``."""
    if settings.redis_cluster_nodes:
        return "cluster"
    if settings.redis_sentinels:
        return "sentinel"
    return "single"


def is_cluster(r) -> bool:
    return isinstance(r, redis.RedisCluster)


def sentinel(settings: Settings, socket_timeout: float = 1.0) -> Sentinel:
    return Sentinel([_host_port(n) for n in settings.redis_sentinels],
                    sentinel_kwargs={"socket_timeout": socket_timeout,
                                     "socket_connect_timeout": socket_timeout})


def store_client(settings: Settings, *, max_connections: int, wait_seconds: float,
                 acked: bool = False, read_only: bool | None = None, **options):
    """The store client for ``settings``: at most ``max_connections`` per process (per
    node on a Cluster), waiting ``wait_seconds`` for one. ``read_only`` (default: the
    node's READ_ONLY) reads a replica. ``options``: redis-py socket options."""
    read_only = settings.read_only if read_only is None else read_only
    options.setdefault("maint_notifications_config", NO_MAINT_NOTIFICATIONS)
    which = kind(settings)
    base = SentinelManagedConnection if which == "sentinel" else redis.Connection
    if acked and settings.replica_acks > 0 and not read_only:
        options["connection_class"] = replica_acks.acking(
            base, settings.replica_acks, settings.replica_ack_timeout_ms)
    elif which == "sentinel":
        options["connection_class"] = base
    if which == "cluster":
        first, *rest = settings.redis_cluster_nodes
        options.pop("health_check_interval", None)  # not passed to node pools
        return redis.RedisCluster(
            url=f"redis://{first}", startup_nodes=[ClusterNode(*_host_port(n)) for n in rest],
            connection_pool_class=waiting_pool_class(wait_seconds),
            max_connections=max_connections,
            load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS
            if read_only else None,
            **options)
    if which == "sentinel":
        manager = sentinel(settings)
        pool_class = waiting_pool_class(wait_seconds, _SentinelBlockingPool)
        make = manager.replica_for if read_only else manager.master_for
        return make(settings.redis_sentinel_master, connection_pool_class=pool_class,
                    max_connections=max_connections, **options)
    return waiting_client(settings.redis_url, max_connections=max_connections,
                          wait_seconds=wait_seconds, **options)


def events_client(settings: Settings):
    """A client for the event hub's one subscription (``.pubsub()``): on a Cluster a
    RedisCluster, whose ``pubsub()`` SSUBSCRIBEs each symbol on its slot's node (a read-only
    node: on a replica; sharded messages reach the replicas of the shard)."""
    options = dict(socket_connect_timeout=2, socket_keepalive=True,
                   maint_notifications_config=NO_MAINT_NOTIFICATIONS)
    which = kind(settings)
    if which == "cluster":
        return store_client(settings, max_connections=8, wait_seconds=5, **options)
    if which == "sentinel":
        manager = sentinel(settings)
        make = manager.replica_for if settings.read_only else manager.master_for
        return make(settings.redis_sentinel_master, **options)
    return redis.Redis.from_url(settings.redis_url, **options)


def tool_client(settings: Settings, **options):
    """A plain client for tools and background jobs (verify, the archive mover, benches):
    a few connections, decoded replies, the primary."""
    options.setdefault("decode_responses", True)
    options.setdefault("socket_timeout", 10)
    options.setdefault("socket_connect_timeout", 2)
    return store_client(settings, max_connections=8, wait_seconds=10, read_only=False,
                        **options)
