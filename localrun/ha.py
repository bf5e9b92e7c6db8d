"""Real high-availability Redis setups for tests, on free loopback ports in temp dirs.

``SentinelSetup``: a primary, one replica and three Sentinels (``redis-server
--sentinel``), master name ``matching``, down-after 1 s: kill -9 the primary and the
Sentinels promote the replica within a few seconds.
``ClusterSetup``: a Redis Cluster of 3 primaries and 3 replicas (``redis-cli --cluster
create ... --cluster-replicas 1``), cluster-node-timeout 1 s, plus a plain broker Redis
beside it (kombu has no Cluster transport).

Each ``stop()`` ends every process it started; ``env()`` is what the service processes
need to use the setup (settings.py reads it), ``settings()`` the same for in-process code.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from localrun.processes import RedisServer, free_port, wait_until
from settings import Settings, load_settings

MASTER = "matching"
# A (re)joining replica syncs at once: by default the primary waits 5 s for more replicas
# to share the transfer, which would hold REPLICA_ACKS writes that long after a failover.
FAST_SYNC = ("--repl-diskless-sync-delay", "0")


def cluster_port() -> int:
    """A free port for a cluster node: at most 55535, with port + 10000 (the cluster bus)
    free too."""
    while True:
        port = random.randint(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


@dataclass
class SentinelSetup:
    directory: Path
    down_after_ms: int = 1000
    primary: RedisServer = None
    replica: RedisServer = None
    sentinel_ports: list[int] = field(default_factory=list)
    sentinels: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> SentinelSetup:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelSetup:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.primary = RedisServer(self.directory / "primary", extra=FAST_SYNC).start()
        self.replica = RedisServer(self.directory / "replica", extra=(
            *FAST_SYNC, "--replicaof", "127.0.0.1", str(self.primary.port))).start()
        wait_until(lambda: self.replica.client().info("replication")[
            "master_link_status"] == "up", timeout=20, what="replica in sync")
        for n in range(3):
            port = free_port()
            d = self.directory / f"sentinel{n}"
            d.mkdir()
            conf = d / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile sentinel.log\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 1\n")
            self.sentinel_ports.append(port)
            self.sentinels.append(subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL))
        # Ready once every Sentinel knows the replica and the two other Sentinels.
        wait_until(self._discovered, timeout=30, interval=0.2, what="sentinels discovered")
        return self

    def _discovered(self) -> bool:
        for port in self.sentinel_ports:
            s = redis.Redis(port=port, socket_timeout=1)
            try:
                if (len(s.sentinel_slaves(MASTER)) < 1
                        or len(s.sentinel_sentinels(MASTER)) < 2):
                    return False
            finally:
                s.close()
        return True

    @property
    def nodes(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def env(self, **extra: str) -> dict[str, str]:
        return {"REDIS_SENTINELS": self.nodes, "REDIS_SENTINEL_MASTER": MASTER, **extra}

    def settings(self, **extra: str) -> Settings:
        return load_settings(self.env(**extra))

    def master_port(self) -> int | None:
        for port in self.sentinel_ports:
            s = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            try:
                addr = s.sentinel_get_master_addr_by_name(MASTER)
                if addr:
                    return int(addr[1])
            except redis.RedisError:
                continue
            finally:
                s.close()
        return None

    def all_agree(self, port: int) -> bool:
        """Every Sentinel names ``port`` as the primary (a node restarted before that
        could be taken for the primary by a Sentinel that has not switched yet)."""
        for p in self.sentinel_ports:
            s = redis.Redis(port=p, socket_timeout=1, decode_responses=True)
            try:
                addr = s.sentinel_get_master_addr_by_name(MASTER)
                if not addr or int(addr[1]) != port:
                    return False
            finally:
                s.close()
        return True

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for server in (self.replica, self.primary):
            if server is not None:
                server.stop()


@dataclass
class ClusterSetup:
    directory: Path
    node_timeout_ms: int = 1000
    servers: list[RedisServer] = field(default_factory=list)
    broker: RedisServer = None

    def start(self) -> ClusterSetup:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> ClusterSetup:
        self.directory.mkdir(parents=True, exist_ok=True)
        for n in range(6):
            port = cluster_port()
            self.servers.append(RedisServer(self.directory / f"node{n}", port=port, extra=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # a replica whose primary died must take over however stale its link was
                "--cluster-replica-validity-factor", "0",
                "--cluster-require-full-coverage", "no", *FAST_SYNC)).start())
        subprocess.run(
            ["redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)
        wait_until(self._ok, timeout=30, interval=0.2, what="cluster state ok")
        self.broker = RedisServer(self.directory / "broker").start()
        return self

    def _ok(self) -> bool:
        for s in self.servers:
            c = s.client(decode_responses=True)
            try:
                info = c.execute_command("CLUSTER", "INFO")
                if "cluster_state:ok" not in info:
                    return False
                if int(info.split("cluster_known_nodes:")[1].split()[0]) < 6:
                    return False
            finally:
                c.close()
        return True

    @property
    def nodes(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def env(self, **extra: str) -> dict[str, str]:
        return {"REDIS_CLUSTER_NODES": self.nodes, "CELERY_BROKER_URL": self.broker.url,
                **extra}

    def settings(self, **extra: str) -> Settings:
        return load_settings(self.env(**extra))

    def client(self, **kwargs) -> redis.RedisCluster:
        kwargs.setdefault("decode_responses", True)
        return redis.RedisCluster(host="127.0.0.1", port=self.servers[0].port, **kwargs)

    def primaries(self) -> list[RedisServer]:
        """The servers that are primaries now (after a failover: the promoted ones)."""
        out = []
        for s in self.servers:
            if s.process is None or s.process.poll() is not None:
                continue
            c = s.client(decode_responses=True, socket_timeout=2)
            try:
                if c.info("replication")["role"] == "master":
                    out.append(s)
            except redis.RedisError:
                pass
            finally:
                c.close()
        return out

    def replica_of(self, primary: RedisServer) -> RedisServer:
        for s in self.servers:
            if s is primary or s.process is None or s.process.poll() is not None:
                continue
            c = s.client(decode_responses=True, socket_timeout=2)
            try:
                info = c.info("replication")
                if info["role"] == "slave" and int(info["master_port"]) == primary.port:
                    return s
            finally:
                c.close()
        raise LookupError(f"no replica of {primary.port}")

    def server_of(self, key: str) -> RedisServer:
        """The server that is the primary of ``key``'s slot now."""
        c = self.client()
        try:
            port = c.get_node_from_key(key).port
        finally:
            c.close()
        return next(s for s in self.servers if s.port == port)

    def wait_ok(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [s for s in self.servers if s.process and s.process.poll() is None]
            try:
                c = alive[0].client(decode_responses=True, socket_timeout=2)
                if "cluster_state:ok" in c.execute_command("CLUSTER", "INFO"):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise TimeoutError("cluster state not ok")

    def stop(self) -> None:
        for s in [*self.servers, self.broker]:
            if s is not None:
                s.stop()
