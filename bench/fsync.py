"""What durability costs: accept throughput with appendfsync always vs everysec vs no AOF.

``python -m bench.fsync [--seconds 2] [--clients 8] [--repeat 3]``. For each policy it
starts its own redis-server (temp dir on the project's disk, never 6379), accepts orders through
``store.journal.accept`` (the REST path's one Lua call per order: sequence, journal
entry, PENDING order, indexes) from 1 client and from N concurrent client processes, plus
``accept_many`` batches of 50, and prints orders/s and the cost of ``always`` against
``everysec``. The last line is one JSON object.

Note: Redis fsyncs once per event-loop iteration under ``always`` (group commit), so
concurrent clients amortise the fsync; a single sequential client pays one fsync per
order. Figures are from a shared, noisy 2-core box: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import redis

from localrun.processes import ROOT, RedisServer
from schemas.markets import get_market
from schemas.orders import PlaceOrderSchema
from settings import Settings
from store import journal

POLICIES = {
    "always": ("--appendonly", "yes", "--appendfsync", "always"),
    "everysec": ("--appendonly", "yes", "--appendfsync", "everysec"),
    "no-aof": ("--appendonly", "no"),
}


def _items(settings: Settings, n: int, tag: str) -> list[tuple]:
    market = get_market(settings, "BTC-USD")
    req = PlaceOrderSchema(settings).load(
        {"symbol": "BTC-USD", "side": "BUY", "price": "100.00", "quantity": "0.001"})
    return [(market, "anonymous", req, f"{tag}{i}") for i in range(n)]


def _client(url: str, settings: Settings, batch: int, tag: str, start, stop, out) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    items = _items(settings, batch, tag)
    start.wait()
    n = 0
    while not stop.is_set():
        if batch == 1:
            journal.accept(r, *items[0])
        else:
            journal.accept_many(r, items)
        n += batch
    out.put(n)
    r.close()


def _run_clients(url: str, settings: Settings, clients: int, seconds: float,
                 batch: int) -> float:
    """Orders/s accepted by CLIENTS client processes (not threads: one Python process
    saturates on the GIL before Redis does), each sending BATCH orders per call."""
    ctx = multiprocessing.get_context("fork")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(url, settings, batch, f"c{i}-", start, stop,
                                                out), daemon=True) for i in range(clients)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # let every client connect and build its items
    t0 = time.perf_counter()
    start.set()
    time.sleep(seconds)
    stop.set()
    total = sum(out.get(timeout=30) for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=10)
    return total / elapsed


def measure(policy: str, seconds: float, clients: int) -> dict:
    base = Path(tempfile.mkdtemp(prefix=f"fsync-{policy}-", dir=ROOT / "var"))
    server = RedisServer(base, extra=POLICIES[policy]).start()
    # RedisServer passes appendonly/appendfsync first; our extra args come last and win.
    try:
        settings = Settings(redis_url=server.url)
        client = server.client(decode_responses=True)
        assert client.config_get("appendfsync")["appendfsync"] == (
            "always" if policy == "always" else "everysec")
        out = {
            "1_client": _run_clients(server.url, settings, 1, seconds, 1),
            f"{clients}_clients": _run_clients(server.url, settings, clients, seconds, 1),
            "batch50": _run_clients(server.url, settings, 1, seconds, 50),
        }
        client.close()
        return {k: round(v) for k, v in out.items()}
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def disk_fsync_ms(n: int = 200) -> dict:
    """Latency of one small write + fsync on the disk Redis would use (var/)."""
    fd, path = tempfile.mkstemp(prefix="fsync-probe-", dir=ROOT / "var")
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 200)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return {"p50": round(times[n // 2], 3), "p99": round(times[int(n * 0.99)], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fsync")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client processes")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved runs per policy; the median is reported")
    args = parser.parse_args(argv)
    (ROOT / "var").mkdir(exist_ok=True)
    disk = disk_fsync_ms()
    runs: dict[str, list[dict]] = {p: [] for p in POLICIES}
    for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits every policy
        for p in POLICIES:
            runs[p].append(measure(p, args.seconds, args.clients))
    results = {p: {c: round(statistics.median(r[c] for r in rs)) for c in rs[0]}
               for p, rs in runs.items()}
    cols = list(results["everysec"])
    print(f"disk: write+fsync p50 {disk['p50']} ms, p99 {disk['p99']} ms (200 probes in var/)")
    print(f"accept throughput, orders/s (store.journal.accept; median of {args.repeat} "
          f"interleaved runs of {args.seconds:.0f} s)")
    print(f"{'policy':<10}" + "".join(f"{c:>14}" for c in cols))
    for p, row in results.items():
        print(f"{p:<10}" + "".join(f"{row[c]:>14}" for c in cols))
    cost = {c: round(1 - results["always"][c] / results["everysec"][c], 3) for c in cols}
    print("cost of appendfsync always vs everysec: " +
          ", ".join(f"{c} -{cost[c]:.0%}" for c in cols))
    print(json.dumps({"disk_fsync_ms": disk, "orders_per_s": results,
                      "always_cost_vs_everysec": cost, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
