"""Load bench of the whole pipeline: REST accept -> Celery wake-up -> worker -> commit.

``python -m bench.load [--clients 32] [--seconds 15] [--mode single|batch|both]
[--batch-size 100] [--profile]`` (``make load``) starts its own stack on free ports: a
redis-server with the AOF on (appendonly yes, appendfsync everysec, as in redis.conf),
gunicorn (``gunicorn -c gunicorn.conf.py wsgi:app``) and one matching worker. The load
comes from ``wrk`` (C, keep-alive, closed loop: ``--clients`` connections each with one
request in flight) running ``bench/load.lua``: GTC/IOC/MARKET/postOnly orders around a
mid price on BTC-USD and ETH-USD, one per POST or ``--batch-size`` per batch POST.

Per mode it prints: accepted/s (orders accepted during the run / run time), processed/s
(orders / time from the first POST to the moment the applied cursor of every symbol
reached its accepted sequence), POST latency p50/p99 (wrk), and accept->processed
p50/p99 (order ``timestamp`` vs the ``timestamp`` of the commit message that applied it,
read from the events channel). Then it checks the final state of every symbol against a
replay of its journal through the engine (``localrun.replay``). ``--cluster``: the same on a
local Redis Cluster (3 primaries + 3 replicas, localrun/ha.py) with a broker Redis
beside it; ``--replica`` gives the single Redis a replica and ``--replica-acks N`` sets
REPLICA_ACKS (run ``--replica`` and ``--replica --replica-acks 1`` back to back for the cost
of the WAIT per accept). With ``--profile`` py-spy
samples the gunicorn workers and the matching worker during the run and the top hot
spots are printed. The LAST line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis

from bench.compare import (
    WEB_PHASES,
    WORKER_PHASES,
    ProcessCpu,
    RedisCommandStats,
    breakdown,
    collapsed_samples,
    print_breakdown,
    print_commandstats,
    run_floor,
)
from bench.measure import percentile
from localrun import processes
from localrun.replay import diff_against_replay
from schemas.markets import get_market
from settings import Settings
from store import events, keys

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTC-USD", "ETH-USD")
SETTINGS = Settings()
# The default limits' shape (one read, two write windows) at amounts nothing reaches.
COUNT_ONLY_LIMITS = "read=1000000000/minute write=1000000000/10seconds,1000000000/day"


class CommitWatcher:
    """Subscribes to the events channels; accept->commit latency of every applied order."""

    def __init__(self, url: str, cluster=None):
        self.cluster = cluster
        if cluster is not None:  # a RedisCluster: one subscription per slot's node
            self.client, self.pubsub = events.subscribe(cluster, SYMBOLS)
        else:
            self.client = redis.Redis.from_url(url)
            self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        for symbol in SYMBOLS if cluster is None else ():  # sharded, one channel per market
            self.pubsub.ssubscribe(keys.events_channel(symbol))
        self.latencies: list[int] = []
        self.commits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.cluster is not None:
            return self._run_cluster()
        try:
            # listen() blocks without a socket timeout: a get_message(timeout) can time out
            # in the middle of a large commit message and lose the connection.
            for msg in self.pubsub.listen():
                if self._stop.is_set():
                    return
                if msg["type"] == "smessage":
                    self._record(msg)
        except (redis.RedisError, OSError, ValueError):
            if not self._stop.is_set():
                raise

    def _run_cluster(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.pubsub.get_message(timeout=0.5)
            except (redis.RedisError, OSError, ValueError):
                if self._stop.is_set():
                    return
                raise
            if msg and msg["type"] == "smessage":
                self._record(msg)

    def _record(self, msg) -> None:
        event = events.parse(msg["data"])  # both message shapes (store/events.py)
        if event.get("type") != "commit":
            return
        self.commits += 1
        lo, hi, ts = event["prevSequence"], event["sequence"], event["timestamp"]
        seen = set()
        for o in event["orders"]:
            if lo < o["sequence"] <= hi and o["id"] not in seen:  # the batch's own orders
                seen.add(o["id"])
                self.latencies.append(ts - o["timestamp"])

    def take(self) -> list[int]:
        out, self.latencies = self.latencies, []
        return out

    def close(self) -> None:
        self._stop.set()
        self.pubsub.close()  # ends listen() in the daemon thread
        self.client.close()


def counters(r: redis.Redis) -> dict[str, tuple[int, int]]:
    """symbol -> (accepted sequence, applied cursor)."""
    with r.pipeline(transaction=False) as pipe:
        for s in SYMBOLS:
            pipe.get(keys.seq(s))
            pipe.get(keys.applied(s))
        v = [int(x or 0) for x in pipe.execute()]
    return {s: (v[2 * i], v[2 * i + 1]) for i, s in enumerate(SYMBOLS)}


def orders_in_journal(r: redis.Redis, symbol: str, after: int) -> int:
    """Places (not cancels) journaled after ``after``: the bench sends no cancels."""
    return int(r.get(keys.seq(symbol)) or 0) - after


def overloaded(base: str) -> int:
    """503 OVERLOADED answers so far (the web's matching_overloaded_total, REST surface):
    tells wrk's non-2xx apart into "refused on purpose" and anything else."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    m = re.search(r'^matching_overloaded_total\{surface="rest"\} ([\d.e+]+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> dict:
    figures = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            figures[f"post_p{pct}_ms"] = round(float(m.group(1)) * _UNITS[m.group(2)], 3)
    m = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    if m:
        figures["requests"] = int(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    figures["socket_errors"] = m.group(1).strip() if m else ""
    return figures


class Profiler:
    """py-spy record (raw collapsed stacks) on a set of processes, for the run's duration."""

    def __init__(self, workdir: Path):
        self.workdir, self.procs = workdir, []
        self.exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or \
            shutil.which("py-spy")

    def start(self, name: str, pid: int, seconds: int, subprocesses: bool = False) -> None:
        if not self.exe:
            print("py-spy not found: .venv/bin/pip install py-spy", file=sys.stderr)
            return
        out = self.workdir / f"{name}.txt"
        args = [self.exe, "record", "-p", str(pid), "-d", str(seconds), "-r", "97",
                "--nonblocking", "-f", "raw", "-o", str(out)]
        if subprocesses:
            args.append("--subprocesses")
        self.procs.append((name, out, subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

    def report(self, top: int = 8) -> dict:
        result = {}
        for name, out, proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            if out.exists():
                result[name] = hot_spots(out.read_text(), top)
                result[name]["breakdown"] = breakdown(
                    out.read_text(), WEB_PHASES if name == "web" else WORKER_PHASES)
        self.procs = []
        return result


def _frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    m = re.match(r"(.*?) \((.*?):\d+\)$", frame.strip())
    if not m:
        return frame.strip()
    path = m.group(2)
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group(1)} ({path})"


def hot_spots(collapsed: str, top: int) -> dict:
    """Self time by function (leaf frame) and inclusive time of project functions."""
    self_time, inclusive, total = collections.Counter(), collections.Counter(), 0
    for stack, n in collapsed_samples(collapsed):
        total += n
        frames = [_frame_name(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        self_time[frames[-1]] += n
        for f in set(frames):
            if f.split("(")[-1].startswith(("app/", "store/", "workers/", "engine/",
                                            "schemas/")):
                inclusive[f] += n
    pct = lambda n: round(100 * n / total, 1) if total else 0.0  # noqa: E731
    return {"samples": total,
            "self": [(f, pct(n)) for f, n in self_time.most_common(top)],
            "inclusive_project": [(f, pct(n)) for f, n in inclusive.most_common(top)]}


def run_mode(mode: str, args, base: str, r: redis.Redis, watcher: CommitWatcher,
             web: subprocess.Popen, worker: subprocess.Popen, redis_pids: list[int],
             workdir: Path) -> dict:
    batch = args.batch_size if mode == "batch" else 0
    before = counters(r)
    watcher.take()
    profiler = Profiler(workdir / mode) if args.profile else None
    if profiler:
        profiler.workdir.mkdir(exist_ok=True)
        profiler.start("web", web.pid, args.seconds, subprocesses=True)
        profiler.start("worker", worker.pid, args.seconds)
    procs = {"web": web.pid, "matcher": worker.pid}
    procs.update({"redis-server" if len(redis_pids) == 1 else f"redis-server {i}": pid
                  for i, pid in enumerate(redis_pids, 1)})
    cpu_run = ProcessCpu(procs)
    # INFO commandstats is per node: read on a single Redis only.
    commandstats = None if args.cluster else RedisCommandStats(r)
    overloaded_before = overloaded(base)
    started = time.time()
    figures = run_wrk(args, base, batch)
    posting_done = time.time()
    # Requests still in flight when wrk stops are accepted a moment later: settle first.
    after_post, last_change = counters(r), time.time()
    while time.time() - last_change < 0.5:
        time.sleep(0.05)
        now = counters(r)
        if any(now[s][0] != after_post[s][0] for s in SYMBOLS):
            after_post, last_change = now, time.time()
    accepted = sum(after_post[s][0] - before[s][0] for s in SYMBOLS)

    def drained():
        now = counters(r)
        return all(now[s][1] >= after_post[s][0] for s in SYMBOLS)

    processes.wait_until(drained, timeout=600, interval=0.005, what="the worker to drain")
    processed_at = time.time()
    # CPU milliseconds per accepted order, per process: robust to other load on the box.
    cpu = cpu_run.ms_per(accepted)
    redis_commands = commandstats.per_order(accepted) if commandstats else []
    time.sleep(0.3)  # the last commit messages reach the watcher
    latencies = watcher.take()
    hot = profiler.report() if profiler else None
    run_s = posting_done - started
    result = {
        "mode": mode, "clients": args.clients, "seconds": args.seconds,
        "batch_size": batch or 1, "accepted": accepted,
        "accepted_per_s": round(accepted / run_s, 1),
        "processed_per_s": round(accepted / (processed_at - started), 1),
        "drain_after_load_s": round(processed_at - posting_done, 2),
        "post_p50_ms": figures.get("post_p50_ms"), "post_p99_ms": figures.get("post_p99_ms"),
        "accept_to_processed_p50_ms": percentile(latencies, 50),
        "accept_to_processed_p99_ms": percentile(latencies, 99),
        "latency_samples": len(latencies), "requests": figures.get("requests"),
        "non_2xx": figures["non_2xx"], "socket_errors": figures["socket_errors"],
        "overloaded_503": overloaded(base) - overloaded_before,
        "cpu_ms_per_order": cpu, "redis_commandstats": redis_commands,
    }
    if hot:
        result["profile"] = hot
    print(f"[{mode}] accepted {accepted} orders in {run_s:.1f} s: "
          f"{result['accepted_per_s']}/s accepted, {result['processed_per_s']}/s processed "
          f"(drained {result['drain_after_load_s']} s after the load); POST p50 "
          f"{result['post_p50_ms']} ms p99 {result['post_p99_ms']} ms; accept->processed "
          f"p50 {result['accept_to_processed_p50_ms']} ms p99 "
          f"{result['accept_to_processed_p99_ms']} ms; non-2xx {result['non_2xx']} "
          f"(503 OVERLOADED {result['overloaded_503']}); "
          f"CPU ms per order {cpu}",
          flush=True)
    if redis_commands:
        print_commandstats(mode, redis_commands)
    for proc, spots in (hot or {}).items():
        print_hot_spots(proc, spots, cpu)
    return result


def print_hot_spots(proc: str, spots: dict, cpu: dict, top: int = 5) -> None:
    """One process's profile (``Profiler.report``): top self and inclusive frames, then
    the phase breakdown in ms per order from ``cpu`` (``ProcessCpu.ms_per``)."""
    print(f"  profile {proc} ({spots['samples']} samples), self time:")
    for f, p in spots["self"][:top]:
        print(f"    {p:5.1f}%  {f}")
    print("   inclusive (project code):")
    for f, p in spots["inclusive_project"][:top]:
        print(f"    {p:5.1f}%  {f}")
    web_ms = sum(ms for name, ms in cpu.items() if name.startswith("web "))
    print_breakdown(proc, spots["breakdown"], web_ms if proc == "web" else cpu["matcher"])


def run_wrk(args, base: str, batch: int = 0) -> dict:
    """bench/load.lua through wrk against ``base``: its parsed figures and ``run_s``."""
    threads = max(1, min(args.threads, args.clients))
    started = time.time()
    wrk = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(args.clients), "-d", f"{args.seconds}s",
         "--timeout", "10s", "--latency", "-s", str(ROOT / "bench" / "load.lua"), base],
        capture_output=True, text=True, env=dict(os.environ, LOAD_BATCH=str(batch)),
        check=False)
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {wrk.stderr or wrk.stdout}")
    return {**parse_wrk(wrk.stdout), "run_s": time.time() - started}


def _start_store(args, workdir: Path) -> dict:
    """The store the bench runs on: a redis-server (AOF on; with ``--replica`` a replica
    beside it), or with ``--cluster`` a local Redis Cluster and a broker Redis."""
    if args.cluster:
        from localrun.ha import ClusterSetup

        setup = ClusterSetup(workdir / "cluster").start()
        primaries = setup.primaries()

        def memory():
            return sum(s.client().info("memory")["used_memory"] for s in primaries)
        return {"server": setup.broker, "env": setup.env(), "client": setup.client,
                "pids": [s.process.pid for s in setup.servers], "memory": memory,
                "stop": [setup]}
    server = processes.RedisServer(workdir / "redis", appendonly=True).start()
    stops, pids = [server], [server.process.pid]
    if args.replica:
        replica = processes.RedisServer(workdir / "replica", appendonly=True, extra=(
            "--replicaof", "127.0.0.1", str(server.port))).start()
        processes.wait_until(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            timeout=30, what="the replica in sync")
        stops.insert(0, replica)
        pids.append(replica.process.pid)
    return {"server": server, "env": {}, "pids": pids, "stop": stops,
            "client": lambda: redis.Redis.from_url(server.url, decode_responses=True),
            "memory": lambda: server.client().info("memory")["used_memory"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--mode", choices=("single", "batch", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--profile", action="store_true", help="py-spy the web and worker")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--log-level", default="INFO",
                        help="LOG_LEVEL of the web and the worker (production: INFO, an access "
                             "line per POST)")
    parser.add_argument("--compare", action="store_true",
                        help="then the same single-POST load against bench.floor (bare Flask, "
                             "one Redis SET) under the same gunicorn settings: the floor")
    parser.add_argument("--rate-limits", default="off",
                        help="RATE_LIMITS for the web node (default off; 'count' counts every "
                             "request against limits too high to refuse: the limiter's cost)")
    parser.add_argument("--archive", action="store_true",
                        help="run beat + the archiver too (ARCHIVE_AFTER_SECONDS=2, SQLite)")
    parser.add_argument("--cluster", action="store_true",
                        help="the store on a local Redis Cluster (3 primaries + 3 replicas)")
    parser.add_argument("--replica", action="store_true", help="give the Redis a replica")
    parser.add_argument("--replica-acks", type=int, default=0, help="REPLICA_ACKS")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is missing: apt-get install -y wrk (make load does it)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    store = _start_store(args, workdir)
    server = store["server"]
    port = processes.free_port()
    env = {"LOG_DIR": str(workdir / "logs"), "LOG_LEVEL": args.log_level, **store["env"],
           "REPLICA_ACKS": str(args.replica_acks)}
    if args.archive:
        env.update(ARCHIVE_URL=f"sqlite:///{workdir / 'archive.sqlite3'}",
                   ARCHIVE_AFTER_SECONDS="2", ARCHIVE_INTERVAL_SECONDS="1",
                   CHECKPOINT_EVERY="20000")
    worker_env = dict(env)
    env["RATE_LIMITS"] = (COUNT_ONLY_LIMITS if args.rate_limits == "count"
                          else args.rate_limits)
    web = worker = None
    watcher = None
    archiver = []
    results, verify = [], {}
    try:
        web = processes.start_gunicorn(server.url, port, workdir / "gunicorn.log", **env)
        worker = processes.start_worker(server.url, workdir / "worker.log", **worker_env)
        if args.archive:
            from localrun.processes import start_archiver, start_beat

            archiver = [start_archiver(server.url, workdir / "archiver.log", **worker_env),
                        start_beat(server.url, workdir / "beat.log", workdir / "beat",
                                   **worker_env)]
        base = f"http://127.0.0.1:{port}"

        def healthy():
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                return resp.status == 200
        processes.wait_until(healthy, timeout=60, interval=0.1, what="/api/health 200")
        r = store["client"]()
        watcher = CommitWatcher(server.url, cluster=store["client"](decode_responses=False)
                                if args.cluster else None)
        modes = ("single", "batch") if args.mode == "both" else (args.mode,)
        for mode in modes:
            results.append(run_mode(mode, args, base, r, watcher, web, worker,
                                    store["pids"], workdir))
        started = time.time()
        for s in SYMBOLS:
            if args.archive:  # Redis and the archive together against the replay
                from archive.verify import check_symbol

                diffs = check_symbol(r, SETTINGS.replace(archive_url=env["ARCHIVE_URL"]),
                                     get_market(SETTINGS, s), full=True)[0]
            else:
                diffs = diff_against_replay(r, get_market(SETTINGS, s))
            verify[s] = {"journal": int(r.get(keys.seq(s)) or 0), "diffs": diffs[:5]}
        ok = all(not v["diffs"] for v in verify.values())
        print(f"final state vs journal replay: {'OK' if ok else 'DIFFERENT'} "
              f"({time.time() - started:.1f} s) {json.dumps(verify)[:2000]}", flush=True)
        if args.compare:
            processes.stop(web)
            processes.stop(worker)
            results.append(run_floor(args, server.url, port, workdir / "floor.log", env,
                                     lambda floor_base: run_wrk(args, floor_base),
                                     Profiler(workdir / "floor") if args.profile else None))
        summary = {"bench": "load", "results": results, "state_matches_replay": ok,
                   "store": "cluster" if args.cluster else "single",
                   "replica": args.replica, "replica_acks": args.replica_acks,
                   "redis_used_memory_mb": round(store["memory"]() / 2**20, 1),
                   "cpus": os.cpu_count()}
        print(json.dumps(summary, separators=(",", ":")))
        return 0 if ok else 1
    finally:
        if watcher:
            watcher.close()
        processes.stop(web)
        processes.stop(worker)
        for proc in archiver:
            processes.stop(proc)
        for setup in store["stop"]:
            setup.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
