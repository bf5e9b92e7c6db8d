"""Crash harness: real redis-server (AOF), gunicorn and matching worker processes, a
client load over HTTP, fault actions, and the "nothing lost, nothing doubled" checks.

Used by tests/crash/ (a few rounds of each kind) and bench/soak.py (many rounds).
Each kind of crash is one function ``round_<kind>(cluster, rng)`` returning a
``RoundResult``; the cluster lives across rounds (state accumulates, so every check
covers everything journaled so far).
"""

from __future__ import annotations

import http.client
import json
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis

from localrun import processes
from localrun.poller import Poller
from settings import Settings
from store import keys
from store.verify import verify

SYMBOLS = ("BTC-USD", "ETH-USD")
FAULT_POINTS = ("after_read", "before_commit", "after_commit")
KINDS = ("worker_kill", "fault_point", "redis_kill", "second_worker")
# gunicorn for the crash tests: one process, a modest thread pool (2 shared cores).
# LOG_DIR "": logs go to stderr only (our per-process files), never to the repo's logs/.
WEB_ENV = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "32", "LOG_DIR": ""}


# ------------------------------------------------------------------ processes


class Cluster:
    """redis-server (appendonly yes, appendfsync everysec) + gunicorn + matching worker."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.redis = processes.RedisServer(self.dir / "redis", appendonly=True)
        self.web_port = processes.free_port()
        self.web = None
        self.workers: list = []  # every worker process started (latest last)
        self._n = 0

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis.url)

    def start(self, worker: bool = True) -> Cluster:
        self.redis.start()
        self.web = processes.start_gunicorn(self.redis.url, self.web_port, self.dir / "web.log",
                                            **WEB_ENV)
        if worker:
            self.start_worker()
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis.port, decode_responses=True,
                           socket_timeout=5, socket_connect_timeout=1)

    def worker_log(self, n: int) -> Path:
        return self.dir / f"worker{n}.log"

    def start_worker(self, **env) -> object:
        self._n += 1
        proc = processes.start_worker(self.redis.url, self.worker_log(self._n),
                                      LOG_LEVEL=env.pop("LOG_LEVEL", "INFO"), LOG_DIR="", **env)
        proc.n = self._n
        self.workers.append(proc)
        return proc

    @property
    def worker(self):
        return self.workers[-1] if self.workers else None

    def live_workers(self) -> list:
        return [w for w in self.workers if w.poll() is None]

    def kill_worker(self, proc=None) -> None:
        proc = proc or self.worker
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGCONT)
            processes.stop(w, timeout=10)
        processes.stop(self.web, timeout=10)
        self.redis.stop()

    # ---------------------------------------------------------------- state

    def cursors(self, r: redis.Redis) -> tuple[int, int]:
        """(sum of accepted sequences, sum of applied cursors) over every symbol."""
        with r.pipeline(transaction=False) as pipe:
            for s in SYMBOLS:
                pipe.get(keys.seq(s))
                pipe.get(keys.applied(s))
            v = [int(x or 0) for x in pipe.execute()]
        return sum(v[0::2]), sum(v[1::2])

    def wait_drained(self, timeout: float = 90.0) -> None:
        r = self.client()
        try:
            processes.wait_until(lambda: (lambda a, b: a == b)(*self.cursors(r)), timeout=timeout,
                                 interval=0.05, what="the matcher to drain every journal")
        finally:
            r.close()


class CursorWatch(Poller):
    """Polls the applied cursors every few ms (reconnecting through outages) so the
    harness can time "kill -> first new commit"."""

    def __init__(self, cluster: Cluster, interval: float = 0.005):
        super().__init__(interval, "cursor-watch")
        self.cluster = cluster
        self.applied = 0
        self.changed_at = 0.0  # monotonic time of the last observed increase

    def connect(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.cluster.redis.port,
                           decode_responses=True, socket_timeout=0.5, socket_connect_timeout=0.2)

    def sample(self, r: redis.Redis) -> None:
        _, applied = self.cluster.cursors(r)
        if applied > self.applied:
            self.applied, self.changed_at = applied, time.monotonic()

    def now_applied(self) -> int:
        """The applied cursors read from Redis now (the poller may lag a few ms)."""
        r = self.cluster.client()
        try:
            return self.cluster.cursors(r)[1]
        finally:
            r.close()

    def wait_commit_after(self, t0: float, baseline: int | None = None,
                          timeout: float = 60.0) -> float:
        """Seconds from ``t0`` to the first cursor increase seen after ``t0`` (past
        ``baseline`` if given)."""
        base = self.applied if baseline is None else baseline
        processes.wait_until(lambda: self.applied > base and self.changed_at > t0, timeout=timeout,
                             interval=0.005, what="a new commit")
        return self.changed_at - t0


# ------------------------------------------------------------------ client load


@dataclass
class LoadStats:
    acked: dict = field(default_factory=dict)  # order id -> (symbol, acked at monotonic)
    cancel_acked: dict = field(default_factory=dict)  # order id -> acked at
    codes: Counter = field(default_factory=Counter)
    bad: list = field(default_factory=list)  # (status, body) of 5xx other than 503, non-JSON
    timeline: list = field(default_factory=list)  # (sent, answered, status) of each write
    errors: int = 0  # transport errors (no HTTP answer)


class Load:
    """Client threads over HTTP against gunicorn: every kind of order (stops and GTD
    included), cancels, reduces, replaces and now and then a cancel-all."""

    def __init__(self, port: int, seed: int, threads: int = 3, pause: float = 0.002):
        self.port, self.threads, self.pause = port, threads, pause
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rng = random.Random(seed)
        self._workers = [threading.Thread(target=self._run, args=(self._rng.random(),),
                                          daemon=True, name=f"load-{i}")
                         for i in range(threads)]

    def start(self) -> Load:
        for t in self._workers:
            t.start()
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)
        return self.stats

    def _order(self, rng: random.Random) -> dict:
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(("BUY", "SELL"))
        lot = "0.001" if symbol == "BTC-USD" else "0.01"
        qty = str(rng.randint(1, 40) * __import__("decimal").Decimal(lot))
        price = f"{100 + rng.randint(-15, 15) * 0.01:.2f}"
        kind = rng.random()
        body = {"symbol": symbol, "side": side, "quantity": qty}
        if kind < 0.62:
            body["price"] = price
        elif kind < 0.72:
            body.update(price=price, timeInForce="IOC")
        elif kind < 0.77:
            body.update(price=price, timeInForce="FOK")
        elif kind < 0.82:
            body.update(orderType="MARKET")
        elif kind < 0.87:
            body.update(price=price, postOnly=True)
        elif kind < 0.90:  # stop orders a few ticks away: they trigger and cascade
            body.update(orderType="STOP_MARKET", stopPrice=price)
        elif kind < 0.93:
            body.update(orderType="STOP_LIMIT", stopPrice=price, price=price)
        else:  # GTD orders that expire within the round
            body.update(price=price, timeInForce="GTD",
                        expireTime=int(time.time() * 1000) + rng.randint(1_100, 3_000))
        return body

    def _manage(self, conn, rng: random.Random, mine: list) -> None:
        """Cancel (mostly), reduce, replace or cancel-all one of this thread's orders."""
        oid, body = mine.pop(rng.randrange(len(mine)))
        pick = rng.random()
        sent = time.monotonic()
        if pick < 0.6:
            conn.request("DELETE", f"/api/orders/{oid}")
        elif pick < 0.8:
            lot = "0.001" if body["symbol"] == "BTC-USD" else "0.01"
            conn.request("PATCH", f"/api/orders/{oid}", body=json.dumps({"quantity": lot}),
                         headers={"Content-Type": "application/json"})
        elif pick < 0.97:
            new = {**self._order(rng), "symbol": body["symbol"], "side": body["side"]}
            conn.request("POST", f"/api/orders/{oid}/replace", body=json.dumps(new),
                         headers={"Content-Type": "application/json"})
        else:
            conn.request("DELETE", f"/api/orders?symbol={body['symbol']}")
        status, answer = self._answer(conn, sent)
        if pick < 0.6 and status in (200, 202):
            with self._lock:
                self.stats.cancel_acked[oid] = time.monotonic()
        elif 0.8 <= pick < 0.97 and status in (200, 202) and isinstance(answer, dict):
            with self._lock:
                self.stats.acked[answer["id"]] = (answer["symbol"], time.monotonic())

    def _run(self, seed: float) -> None:
        rng = random.Random(seed)
        conn = None
        mine: list[str] = []
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                if mine and rng.random() < 0.25:
                    self._manage(conn, rng, mine)
                else:
                    wait = rng.random() < 0.1
                    sent = time.monotonic()
                    request = self._order(rng)
                    conn.request("POST", "/api/orders" + ("?wait=true&timeout=500" if wait
                                                          else ""),
                                 body=json.dumps(request),
                                 headers={"Content-Type": "application/json"})
                    status, body = self._answer(conn, sent)
                    if status in (201, 202) and isinstance(body, dict) and "id" in body:
                        with self._lock:
                            self.stats.acked[body["id"]] = (body["symbol"], time.monotonic())
                        if body.get("status") in ("PENDING", "UNTRIGGERED", "OPEN", "PARTIAL"):
                            mine.append((body["id"], request))
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.stats.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            if self.pause:
                time.sleep(self.pause)

    def _answer(self, conn, sent: float) -> tuple[int, object]:
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.stats.codes[status] += 1
            self.stats.timeline.append((sent, time.monotonic(), status))
            json_error = isinstance(body, dict) and (status < 400 or "error" in body)
            if (status >= 500 and status != 503) or not json_error:
                self.stats.bad.append((status, raw[:300]))
        return status, body


def get_json(port: int, path: str, method: str = "GET", body: dict | None = None
             ) -> tuple[int, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        if body is None:
            conn.request(method, path)
        else:
            conn.request(method, path, body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


# ------------------------------------------------------------------ checks


@dataclass
class RoundResult:
    kind: str
    orders: int = 0
    lost: int = 0
    doubled: int = 0
    mismatches: int = 0
    recovery: list = field(default_factory=list)  # seconds, one per crash
    details: list = field(default_factory=list)  # human-readable problems
    notes: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.mismatches or self.details)


def check(cluster: Cluster, stats: LoadStats, result: RoundResult) -> RoundResult:
    """After the queue drained: nothing lost, nothing doubled, verify() clean."""
    cluster.wait_drained()
    r = cluster.client()
    try:
        ids = list(stats.acked)
        result.orders = len(ids)
        with r.pipeline(transaction=False) as pipe:
            for oid in ids:
                pipe.hmget(keys.order(oid), "status", "filled", "qty", "sym")
            rows = pipe.execute()
        for oid, (status, filled, qty, _sym) in zip(ids, rows, strict=True):
            if status is None or status == "PENDING":
                result.lost += 1
                result.details.append(f"acknowledged order {oid} is {status or 'missing'}")
            elif oid in stats.cancel_acked and status not in ("CANCELLED", "FILLED", "REJECTED"):
                result.lost += 1
                result.details.append(f"acknowledged cancel of {oid} lost: {status}")
            elif int(filled) > int(qty):
                result.doubled += 1
                result.details.append(f"order {oid} filled {filled} > quantity {qty}")
        ops: Counter = Counter()
        for s in SYMBOLS:
            entries = r.xrange(keys.journal(s))
            ops.update(f.get("op") for _eid, f in entries)
            seen = Counter(f.get("id") for _eid, f in entries if f.get("op") == "place")
            dup = [oid for oid, n in seen.items() if n > 1]
            result.doubled += len(dup)
            result.details.extend(f"{s}: order {oid} journaled twice" for oid in dup)
            n_trades = r.xlen(keys.trades(s))
            trade_seq = int(r.get(keys.trade_seq(s)) or 0)
            if n_trades != trade_seq:
                result.doubled += 1
                result.details.append(f"{s}: {n_trades} trades stored, trade seq {trade_seq}")
        result.notes["journal_ops"] = dict(ops)  # so far: every kind of command is in it
        diffs = verify(r, cluster.settings)
        result.mismatches = len(diffs)
        result.details.extend(diffs[:20])
    finally:
        r.close()
    return result


def _log_records(path: Path) -> list[tuple[float, str]]:
    """(unix time, message) of a worker's log lines (JSON lines, see logging_setup)."""
    out = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
            stamp = datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")).timestamp()
            out.append((stamp, str(rec.get("msg", ""))))
        except (ValueError, KeyError, TypeError, AttributeError):
            out.append((0.0, line))
    return out


def _ensure_worker(cluster: Cluster) -> None:
    if not cluster.live_workers():
        cluster.start_worker()


# ------------------------------------------------------------------ rounds


def round_worker_kill(cluster: Cluster, rng: random.Random, load_seconds: float = 2.5):
    """(a) kill -9 the worker at a random moment under load; restart it at once."""
    _ensure_worker(cluster)
    res = RoundResult("worker_kill")
    watch = CursorWatch(cluster).start()
    load = Load(cluster.web_port, rng.random()).start()
    try:
        time.sleep(rng.uniform(0.3, load_seconds))
        cluster.kill_worker()
        t_kill = time.monotonic()
        baseline = watch.now_applied()
        cluster.start_worker()
        res.recovery.append(watch.wait_commit_after(t_kill, baseline))
        time.sleep(0.3)
    finally:
        stats = load.stop()
        watch.stop()
    return check(cluster, stats, res)


def round_fault_point(cluster: Cluster, rng: random.Random, load_seconds: float = 4.0,
                      probability: float = 0.05):
    """(b) the worker kills itself at after_read / before_commit / after_commit."""
    for w in cluster.live_workers():
        processes.stop(w)
    res = RoundResult("fault_point")
    env = {"FAULT_POINTS": ",".join(FAULT_POINTS), "FAULT_PROBABILITY": str(probability)}
    watch = CursorWatch(cluster).start()
    load = Load(cluster.web_port, rng.random()).start()
    points: Counter = Counter()
    pending: list[tuple[float, int]] = []  # deaths waiting for their next commit
    try:
        proc = cluster.start_worker(**env)
        deadline = time.monotonic() + load_seconds
        while time.monotonic() < deadline or pending or not res.recovery:
            now = time.monotonic()
            if now > deadline + 60:
                res.details.append("the faulty worker never died or never recovered")
                break
            for death in list(pending):
                if watch.applied > death[1] and watch.changed_at > death[0]:
                    res.recovery.append(watch.changed_at - death[0])
                    pending.remove(death)
            if proc.poll() is not None:  # it killed itself: note where, start another
                pending.append((time.monotonic(), watch.now_applied()))
                died = [msg for _, msg in _log_records(cluster.worker_log(proc.n))
                        if "fault injection" in msg]
                points[died[-1].split()[-1] if died else "unknown"] += 1
                proc = cluster.start_worker(**env)
            time.sleep(0.005)
    finally:
        stats = load.stop()
        watch.stop()
    # Drain with a worker that does not kill itself (the faults already happened).
    for w in cluster.live_workers():
        processes.stop(w)
    cluster.start_worker()
    res.notes["fault_points"] = dict(points)
    return check(cluster, stats, res)


def round_redis_kill(cluster: Cluster, rng: random.Random, load_seconds: float = 2.0,
                     outage: float = 1.0):
    """(c) kill -9 redis-server under load, restart it from its AOF on the same port/dir.

    Web and worker are NOT restarted: they must reconnect by themselves. During the
    outage writes answer 503 JSON (never 500) and /api/health answers 503.
    """
    _ensure_worker(cluster)
    workers_before = [w.pid for w in cluster.live_workers()]
    web_pid = cluster.web.pid
    res = RoundResult("redis_kill")
    watch = CursorWatch(cluster).start()
    load = Load(cluster.web_port, rng.random()).start()
    try:
        time.sleep(rng.uniform(0.3, load_seconds))
        t_kill = time.monotonic()
        cluster.redis.kill()
        acked_before = {oid for oid, (_s, t) in load.stats.acked.items() if t < t_kill}
        time.sleep(outage / 2)
        health, _ = get_json(cluster.web_port, "/api/health")
        time.sleep(outage / 2)
        t_restart = time.monotonic()
        cluster.redis.start()
        r = cluster.client()
        _, baseline = cluster.cursors(r)
        r.close()
        res.recovery.append(watch.wait_commit_after(t_restart, baseline) +
                            (t_restart - t_kill))
        res.notes["after_restart"] = res.recovery[-1] - (t_restart - t_kill)
        time.sleep(0.5)
    finally:
        stats = load.stop()
        watch.stop()
    # The web's event hub reconnected too: a waiting order comes back processed (201).
    status, body = get_json(cluster.web_port, "/api/orders?wait=true&timeout=10000", "POST",
                            {"symbol": "ETH-USD", "side": "BUY", "price": "1.00",
                             "quantity": "0.01"})
    if status != 201:
        res.details.append(f"POST ?wait=true after the restart answered {status}: {body}")
    if health != 503:
        res.details.append(f"/api/health answered {health} during the outage, not 503")
    outage_codes = Counter(s for t, done, s in stats.timeline
                           if t > t_kill + 0.05 and done < t_restart)
    res.notes["outage_codes"] = dict(outage_codes)
    if outage_codes and set(outage_codes) != {503}:
        res.details.append(f"writes during the outage answered {dict(outage_codes)}")
    after = [s for t, _, s in stats.timeline if t > t_restart + 0.1]
    if not any(s in (200, 201, 202) for s in after):
        res.details.append("the web never accepted a write after the restart")
    if stats.bad:
        res.details.append(f"{len(stats.bad)} bad answers, e.g. {stats.bad[:3]}")
    if [w.pid for w in cluster.live_workers()] != workers_before or cluster.web.poll():
        res.details.append("a worker or the web process died with Redis")
    if cluster.web.pid != web_pid:
        res.details.append("the web process changed")
    check(cluster, stats, res)
    r = cluster.client()
    try:
        with r.pipeline(transaction=False) as pipe:
            for oid in acked_before:
                pipe.exists(keys.order(oid))
            gone = [oid for oid, e in zip(acked_before, pipe.execute(), strict=True) if not e]
    finally:
        r.close()
    if gone:
        res.lost += len(gone)
        res.details.append(f"{len(gone)} orders acknowledged before the kill are gone")
    return res


def round_second_worker(cluster: Cluster, rng: random.Random, load_seconds: float = 1.5,
                        freeze: float = 4.0):
    """(d) a second worker on the same symbols under load. The first is frozen (SIGSTOP)
    past its lease so the second takes over, then thawed: the stale one must not write."""
    _ensure_worker(cluster)
    res = RoundResult("second_worker")
    watch = CursorWatch(cluster).start()
    load = Load(cluster.web_port, rng.random()).start()
    try:
        first = cluster.live_workers()[0]
        time.sleep(rng.uniform(0.3, load_seconds))
        second = cluster.start_worker()
        time.sleep(rng.uniform(0.5, 1.5))  # both run; the lease decides who writes
        first.send_signal(signal.SIGSTOP)
        t_freeze = time.monotonic()
        time.sleep(0.05)  # a commit already sent by the frozen worker may still land
        baseline = watch.now_applied()
        res.recovery.append(watch.wait_commit_after(t_freeze, baseline))
        time.sleep(max(0.0, freeze - (time.monotonic() - t_freeze)))
        first.send_signal(signal.SIGCONT)
        t_thaw_wall = time.time()
        time.sleep(1.5)  # the stale worker runs again, under load
    finally:
        stats = load.stop()
        watch.stop()
    check(cluster, stats, res)
    # The thawed worker must not have committed after it came back (its lease is gone).
    stale_commits = [msg for stamp, msg in _log_records(cluster.worker_log(first.n))
                     if msg.startswith("committed ") and stamp > t_thaw_wall + 0.05]
    res.notes["stale_commits"] = len(stale_commits)
    res.notes["stale_noticed"] = sum(
        1 for stamp, msg in _log_records(cluster.worker_log(first.n))
        if stamp > t_thaw_wall - 0.5 and ("lost the lease" in msg or "fenced" in msg))
    if stale_commits:
        res.details.append(f"the stale worker committed after losing its lease: "
                           f"{stale_commits[:2]}")
    # Keep one worker for the next round: the one that holds the leases.
    processes.stop(first)
    if second.poll() is not None:
        res.details.append("the second worker died")
    return res


ROUNDS = {
    "worker_kill": round_worker_kill,
    "fault_point": round_fault_point,
    "redis_kill": round_redis_kill,
    "second_worker": round_second_worker,
}
