"""Failover under load: kill -9 a primary while clients post and cancel, then check.

A ``Service`` is the real stack on a ``SentinelSetup`` or ``ClusterSetup``
(tests/ha/servers.py): gunicorn, the matching worker and a READ_ONLY gunicorn on the
replicas, all configured through the env (settings.py), REDIS_URL pointing nowhere.
``run_failover`` drives the crash harness's client load (localrun/crash.py: every
kind of order, cancels, reduces, replaces, cancel-alls) and a WebSocket client that
records every trade, kills the primary (Sentinel: THE primary; Cluster: the primary of
the busy symbol's slot), lets it come back as a replica, and returns the figures:
orders acknowledged, lost, doubled, trades the WebSocket client saw before the kill and
whether each exists afterwards unchanged, trades re-derived from the journal, time
from the kill to the first acknowledged write and to the first commit, the answers in
the gap, and the verify (journal replay) differences.

``python -m tests.ha.failover --store sentinel|cluster [--replica-acks N]`` prints the
same figures (docs/deployment.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import redis
import websocket

from localrun.crash import Load, get_json
from localrun.poller import Poller
from store import connect, keys
from store.verify import verify
from tests.ha.servers import FAST_SYNC, ClusterSetup, SentinelSetup
from tests.support import free_port, start_gunicorn, start_worker, stop, wait_until

NOWHERE = "redis://127.0.0.1:9/0"  # REDIS_URL must not be the store when HA is set
WEB_ENV = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "32", "LOG_DIR": ""}


def markets(symbols) -> list[dict]:
    # One tick and lot for all: the harness load picks its quantities as multiples of
    # 0.001 or 0.01, both lot multiples here.
    return [{"symbol": s, "tickSize": "0.01", "lotSize": "0.001"} for s in symbols]


class SymbolLoad(Load):
    """The crash harness's load over ``symbols``, ``busy`` getting half of the orders."""

    def __init__(self, port, seed, symbols, busy=None, **kwargs):
        super().__init__(port, seed, **kwargs)
        self.symbols, self.busy = list(symbols), busy

    def _order(self, rng):
        body = super()._order(rng)
        body["symbol"] = (self.busy if self.busy and rng.random() < 0.5
                          else rng.choice(self.symbols))
        return body


class TradeRecorder:
    """A WebSocket client on the ``trade`` channel of every symbol: (received at, trade)."""

    def __init__(self, port: int, symbols):
        self.url, self.symbols = f"ws://127.0.0.1:{port}/ws", list(symbols)
        self.trades: list[tuple[float, dict]] = []
        self.reconnects = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ws-trades")

    def start(self) -> TradeRecorder:
        self._thread.start()
        if not self._ready.wait(20):
            raise TimeoutError("the WebSocket client could not subscribe")
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ws = websocket.create_connection(self.url, timeout=1)
                for s in self.symbols:
                    ws.send(json.dumps({"op": "subscribe", "channel": "trade", "symbol": s}))
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        msg = orjson.loads(ws.recv())
                    except websocket.WebSocketTimeoutException:
                        continue
                    if msg.get("event") == "trade":
                        self.trades.append((time.monotonic(), msg))
            except (OSError, websocket.WebSocketException):
                self.reconnects += 1
                time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class AppliedWatch(Poller):
    """Polls the applied cursors through the store client (following the failover)."""

    errors = (redis.RedisError, redis.exceptions.RedisClusterException)

    def __init__(self, settings, symbols):
        super().__init__(0.01, "applied-watch")
        self.settings, self.symbols = settings, list(symbols)
        self.samples: list[tuple[float, int]] = []
        self.per_symbol: list[tuple[float, dict[str, int]]] = []

    def connect(self):
        return connect.tool_client(self.settings, socket_timeout=0.5, socket_connect_timeout=0.3)

    def sample(self, r) -> None:
        values = {s: int(r.get(keys.applied(s)) or 0) for s in self.symbols}
        self.samples.append((time.monotonic(), sum(values.values())))
        self.per_symbol.append((time.monotonic(), values))

    def first_commit_after(self, t0: float) -> float | None:
        before = [v for t, v in self.samples if t <= t0]
        base = max(before) if before else 0
        for t, v in self.samples:
            if t > t0 and v > base:
                return t - t0
        return None

    def commits_between(self, t0: float, t1: float) -> dict[str, int]:
        """Commands each symbol applied between ``t0`` and ``t1`` (by the samples)."""
        base = [v for t, v in self.per_symbol if t <= t0]
        inside = [v for t, v in self.per_symbol if t0 < t <= t1]
        if not base or not inside:
            return {s: 0 for s in self.symbols}
        return {s: inside[-1][s] - base[-1][s] for s in self.symbols}


@dataclass
class Service:
    """gunicorn + the matching workers + a READ_ONLY gunicorn on an HA setup."""

    setup: object
    directory: Path
    symbols: tuple[str, ...]
    replica_acks: int = 0
    web_port: int = field(default_factory=free_port)
    ro_port: int = field(default_factory=free_port)
    procs: list = field(default_factory=list)
    workers: list = field(default_factory=list)  # (process, its WORKER_SYMBOLS)

    def env(self, **extra) -> dict[str, str]:
        return self.setup.env(MARKETS=json.dumps(markets(self.symbols)),
                              REPLICA_ACKS=str(self.replica_acks), **extra)

    @property
    def settings(self):
        return self.setup.settings(MARKETS=json.dumps(markets(self.symbols)))

    def worker_groups(self) -> list[tuple[str, ...]]:
        """The symbols of each matching worker. On a Cluster one worker per primary, as an
        operator deploys it (docs/deployment.md §9): a worker's one thread waits on a dead
        shard's retries, so a worker that also owned other shards' symbols would stall them
        for the whole failover. On Sentinel one worker owns every symbol."""
        if not isinstance(self.setup, ClusterSetup):
            return [self.symbols]
        groups: dict[int, list[str]] = {}
        for s in self.symbols:
            groups.setdefault(self.setup.server_of(keys.journal(s)).port, []).append(s)
        return [tuple(g) for g in groups.values()]

    def start_worker(self, group: tuple[str, ...], name: str):
        return start_worker(NOWHERE, self.directory / f"{name}.log", LOG_LEVEL="INFO",
                            LOG_DIR="", **self.env(WORKER_SYMBOLS=",".join(group)))

    def restart_worker(self, i: int) -> None:
        """kill -9 worker ``i`` and start another for its symbols."""
        old, group = self.workers[i]
        old.kill()
        old.wait()
        self.procs.remove(old)
        self.workers[i] = (self.start_worker(group, f"worker{i}-again"), group)
        self.procs.append(self.workers[i][0])

    def start(self) -> Service:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        self.workers = [(self.start_worker(g, f"worker{i}"), g)
                        for i, g in enumerate(self.worker_groups())]
        self.procs.extend(p for p, _ in self.workers)
        self.procs.append(start_gunicorn(NOWHERE, self.web_port, d / "web.log",
                                         **WEB_ENV, **self.env()))
        self.procs.append(start_gunicorn(NOWHERE, self.ro_port, d / "ro.log", **WEB_ENV,
                                         **self.env(READ_ONLY="true")))
        r = connect.tool_client(self.settings)
        try:
            wait_until(lambda: all(r.exists(keys.heartbeat(s)) for s in self.symbols),
                       timeout=60, interval=0.1, what="matcher heartbeats")
        finally:
            r.close()
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop(p, timeout=10)

    def drained(self, timeout: float = 90) -> None:
        r = connect.tool_client(self.settings)

        def done():
            return all(int(r.get(keys.applied(s)) or 0) == int(r.get(keys.seq(s)) or 0)
                       for s in self.symbols)
        try:
            wait_until(done, timeout=timeout, interval=0.1, what="the matcher to drain")
        finally:
            r.close()


@dataclass
class Figures:
    store: str
    replica_acks: int
    acknowledged: int = 0
    lost: int = 0
    doubled: int = 0
    ws_trades_before_kill: int = 0
    ws_trades_missing_or_changed: int = 0
    trades_rederived: int = 0
    seconds_to_promotion: float | None = None
    seconds_to_first_ack: float | None = None
    seconds_to_first_commit: float | None = None
    answers_after_kill: dict = field(default_factory=dict)
    bad_answers: list = field(default_factory=list)  # 5xx other than 503, non-JSON
    verify_diffs: list = field(default_factory=list)
    read_only_before: int = 0
    read_only_after: int = 0
    other_symbols_commits_during_gap: dict | None = None  # per symbol, kill → first commit
    details: list = field(default_factory=list)

    def summary(self) -> str:
        d = {k: v for k, v in self.__dict__.items() if k not in ("details", "verify_diffs")}
        d["verify_diffs"] = len(self.verify_diffs)
        return json.dumps(d, indent=1, default=str)


def _all_trades(port: int, symbol: str) -> dict[int, dict]:
    """Every trade of ``symbol`` through the public API, by sequence."""
    out, cursor = {}, None
    while True:
        path = f"/api/trades?symbol={symbol}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, body = get_json(port, path)
        assert status == 200, (status, body)
        for t in body["trades"]:
            out[t["sequence"]] = t
        cursor = body.get("nextCursor")
        if not cursor:
            return out


def _orderbook_ok(port: int, symbol: str) -> bool:
    status, body = get_json(port, f"/api/orderbook?symbol={symbol}")
    return status == 200 and "bids" in body


def run_failover(service: Service, *, busy: str | None = None, before: float = 2.5,
                 after: float = 6.0, seed: int = 1) -> Figures:
    """Load, kill -9 the primary (of ``busy``'s slot on a Cluster), load on, check."""
    setup = service.setup
    cluster = isinstance(setup, ClusterSetup)
    fig = Figures("cluster" if cluster else "sentinel", service.replica_acks)
    symbols = service.symbols
    busy = busy or symbols[0]
    fig.read_only_before = sum(_orderbook_ok(service.ro_port, s) for s in symbols)
    if cluster:  # the primary of the busy symbol's slot, and the symbols on other primaries
        victim = setup.server_of(keys.journal(busy))
        hit = [s for s in symbols if setup.server_of(keys.journal(s)) is victim]
        others = [s for s in symbols if s not in hit]
    else:
        victim, hit, others = setup.primary, list(symbols), []
    recorder = TradeRecorder(service.web_port, symbols).start()
    watch = AppliedWatch(service.settings, hit).start()  # the killed primary's symbols
    other_watch = AppliedWatch(service.settings, others).start() if others else None
    load = SymbolLoad(service.web_port, seed, symbols, busy=busy if cluster else None,
                      threads=4).start()
    # A client of the other primaries' symbols only: the load above also waits on the
    # busy symbol's writes during the gap, which would slow its other symbols for reasons
    # of its own, not the service's.
    other_load = SymbolLoad(service.web_port, seed + 1, others, threads=2).start() if (
        others) else None
    try:
        time.sleep(before)
        replica_seq = _replica_trade_seqs(setup, victim, symbols)
        heir = setup.replica_of(victim) if cluster else None
        victim.kill()
        t_kill = time.monotonic()
        ws_before = [t for at, t in recorder.trades if at <= t_kill]
        if not cluster:
            wait_until(lambda: setup.master_port() not in (None, victim.port), timeout=60,
                       interval=0.05, what="Sentinel to promote the replica")
        else:
            wait_until(lambda: heir in setup.primaries(), timeout=60, interval=0.05,
                       what="the cluster to promote the victim's replica")
        fig.seconds_to_promotion = round(time.monotonic() - t_kill, 2)
        _restart_as_replica(setup, victim)
        time.sleep(after)
    finally:
        stats = load.stop()
        if other_load is not None:
            more = other_load.stop()
            stats.acked.update(more.acked)
            stats.cancel_acked.update(more.cancel_acked)
            stats.bad.extend(more.bad)
            stats.timeline.extend(more.timeline)
        recorder.stop()
    service.drained()
    watch.stop()
    fig.seconds_to_first_commit = watch.first_commit_after(t_kill)
    if other_watch is not None:
        other_watch.stop()
        gap_end = t_kill + (fig.seconds_to_first_commit or 0)
        fig.other_symbols_commits_during_gap = other_watch.commits_between(t_kill, gap_end)
    after_kill = [(s, a, st) for s, a, st in stats.timeline if s > t_kill]
    fig.answers_after_kill = dict(Counter(st for _, _, st in after_kill))
    acks = [a for s, a, st in after_kill if 200 <= st < 300]
    fig.seconds_to_first_ack = round(min(acks) - t_kill, 2) if acks else None
    fig.bad_answers = [(st, body.decode(errors="replace")) for st, body in stats.bad]
    _check_store(service, stats, fig)
    fig.ws_trades_before_kill = len(ws_before)
    stored = {s: _all_trades(service.web_port, s) for s in symbols}
    for t in ws_before:
        got = stored[t["symbol"]].get(t["sequence"])
        same = got is not None and all(got[k] == t[k] for k in (
            "id", "price", "quantity", "sequence", "buyOrderId", "sellOrderId"))
        if not same:
            fig.ws_trades_missing_or_changed += 1
            fig.details.append(f"trade seen before the kill {t} is now {got}")
        elif t["sequence"] > replica_seq.get(t["symbol"], 0):
            fig.trades_rederived += 1
    fig.read_only_after = sum(_orderbook_ok(service.ro_port, s) for s in symbols)
    return fig


def _replica_trade_seqs(setup, victim, symbols) -> dict[str, int]:
    """The trade sequences the victim's replica holds (frozen once the victim dies: what
    the promoted node starts from; read just before the kill, so a lower bound)."""
    out = {}
    if isinstance(setup, SentinelSetup):
        replicas = {s: setup.replica for s in symbols}
    else:
        replicas = {}
        for s in symbols:
            if setup.server_of(keys.journal(s)) is victim:
                replicas[s] = setup.replica_of(victim)
    for s, server in replicas.items():
        c = server.client(decode_responses=True)
        try:
            if isinstance(setup, ClusterSetup):
                c.execute_command("READONLY")  # a cluster replica serves reads only so
            out[s] = int(c.get(keys.trade_seq(s)) or 0)
        finally:
            c.close()
    return out


def _restart_as_replica(setup, victim) -> None:
    """The supervisor brings the killed node back; it rejoins as a replica (REPLICA_ACKS
    needs one). Sentinel: as a replica of the new primary; Cluster: the node keeps its
    nodes.conf, learns it lost its slots, and replicates the promoted one."""
    if isinstance(setup, SentinelSetup):
        promoted = setup.replica.port  # the only candidate
        wait_until(lambda: setup.all_agree(promoted), timeout=30, interval=0.05,
                   what="every Sentinel to know the new primary")
        victim.extra = (*FAST_SYNC, "--replicaof", "127.0.0.1", str(promoted))
        victim.start()
        setup.replica, setup.primary = victim, setup.replica
    else:
        victim.start()


def _check_store(service: Service, stats, fig: Figures) -> None:
    r = connect.tool_client(service.settings)
    try:
        ids = list(stats.acked)
        fig.acknowledged = len(ids)
        for oid in ids:
            status, filled, qty = r.hmget(keys.order(oid), "status", "filled", "qty")
            if status is None or status == "PENDING":
                fig.lost += 1
                fig.details.append(f"acknowledged order {oid} is {status or 'missing'}")
            elif oid in stats.cancel_acked and status not in ("CANCELLED", "FILLED",
                                                                "REJECTED"):
                fig.lost += 1
                fig.details.append(f"acknowledged cancel of {oid} lost: {status}")
            elif int(filled) > int(qty):
                fig.doubled += 1
                fig.details.append(f"order {oid} filled {filled} > quantity {qty}")
        for s in service.symbols:
            seen = Counter(f.get("id") for _, f in r.xrange(keys.journal(s))
                           if f.get("op") == "place")
            fig.doubled += sum(1 for n in seen.values() if n > 1)
        fig.verify_diffs = verify(r, service.settings)
    finally:
        r.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ha.failover")
    parser.add_argument("--store", choices=("sentinel", "cluster"), default="sentinel")
    parser.add_argument("--replica-acks", type=int, default=1)
    parser.add_argument("--symbols", type=int, default=2)
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    args = parser.parse_args(argv)
    d = Path(tempfile.mkdtemp(prefix="failover-"))
    setup = (ClusterSetup if args.store == "cluster" else SentinelSetup)(d / "redis").start()
    symbols = tuple(f"S{i:02d}-USD" for i in range(args.symbols))
    service = Service(setup, d / "svc", symbols, replica_acks=args.replica_acks)
    try:
        service.start()
        fig = run_failover(service, seed=args.seed)
        print(fig.summary())
        for line in fig.details[:20]:
            print(" ", line)
    finally:
        service.stop()
        setup.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
