"""What candles, the ticker's minute buckets and the book checksum cost the matching worker.

Run: ``.venv/bin/python -m bench.market_data_bench [--commands N] [--batch B]``
(``make bench-market-data``).

The worker's own commit path (``store.commit.commit`` with the engine, its own
redis-server, a real lease) applies the same seeded flow twice: once as the worker runs
it (``book=`` for the checksum, ``candles=`` for the candle cache) and once without
either. Every other command crosses, so about one trade per two commands. The difference
in the worker's CPU time (``time.process_time``) and in redis-server's CPU (``INFO cpu``)
per trade is the cost; ``--batch`` commands share one commit (1: the single-order
mode, where each commit carries about half a trade; 50: a busy matcher's batches).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import redis

from engine import OrderBook, OrderType, PlaceOrder, Side, TimeInForce, apply
from localrun.processes import RedisServer
from schemas.markets import get_market
from settings import Settings
from store import candles
from store.commit import commit
from workers.lease import Lease


def flow(n: int, seed: int = 42) -> list[PlaceOrder]:
    """Resting orders around 100.00 and takers that cross them; timestamps 40 ms apart, so
    the run spans many 1m buckets (a minute edge every 1,500 commands)."""
    rnd = random.Random(seed)
    t0 = 1_780_000_000_000
    out = []
    for i in range(n):
        side = Side.BUY if rnd.random() < 0.5 else Side.SELL
        cross = i % 2 == 1
        offset = rnd.randint(0, 20)
        price = 10_000 + (offset if side is Side.SELL else -offset)
        if cross:
            price = 10_000 + (30 if side is Side.BUY else -30)
        out.append(PlaceOrder(sequence=i + 1, timestamp=t0 + 40 * i, order_id=f"o{i}",
                              side=side, order_type=OrderType.LIMIT,
                              time_in_force=TimeInForce.GTC, price=price,
                              quantity=rnd.randint(1, 2000)))
    return out


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def run(r: redis.Redis, commands, batch: int, with_market_data: bool) -> dict:
    r.flushall()
    settings = Settings()
    market = get_market(settings, "BTC-USD")
    lease = Lease(r, market.symbol)
    assert lease.renew()
    book = OrderBook(market.symbol)
    cache = candles.CandleCache(r, market.symbol, book) if with_market_data else None
    trades = 0
    cpu0, redis0, wall0 = time.process_time(), redis_cpu(r), time.perf_counter()
    renewed = time.monotonic()
    for start in range(0, len(commands), batch):
        if time.monotonic() - renewed > 1:  # the worker's maintenance thread does this
            lease.renew()
            renewed = time.monotonic()
        prev = book.last_sequence
        events = []
        for command in commands[start:start + batch]:
            events.extend(apply(book, command))
        trades += sum(type(e).__name__ == "TradeExecuted" for e in events)
        commit(r, market, lease.token, prev, book.last_sequence, events,
               commands[start].timestamp,
               book=book if with_market_data else None, candles=cache)
    cpu, rcpu = time.process_time() - cpu0, redis_cpu(r) - redis0
    wall = time.perf_counter() - wall0
    lease.release()
    return {"trades": trades, "worker_cpu_s": cpu, "redis_cpu_s": rcpu, "wall_s": wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--batch", type=int, action="append",
                        help="commands per commit (repeatable; default 1 and 50)")
    args = parser.parse_args(argv)
    commands = flow(args.commands)
    results = {}
    with tempfile.TemporaryDirectory(prefix="md-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            r = redis.Redis.from_url(server.url, decode_responses=True)
            for batch in args.batch or [1, 50]:
                base = run(r, commands, batch, False)
                full = run(r, commands, batch, True)
                n = full["trades"]
                worker_us = (full["worker_cpu_s"] - base["worker_cpu_s"]) / n * 1e6
                redis_us = (full["redis_cpu_s"] - base["redis_cpu_s"]) / n * 1e6
                results[f"batch_{batch}"] = {
                    "trades": n, "commits": -(-len(commands) // batch),
                    "worker_cpu_per_trade_us_without": round(base["worker_cpu_s"] / n * 1e6, 1),
                    "worker_cpu_per_trade_us_with": round(full["worker_cpu_s"] / n * 1e6, 1),
                    "worker_cost_per_trade_us": round(worker_us, 1),
                    "redis_cpu_per_trade_us_without": round(base["redis_cpu_s"] / n * 1e6, 1),
                    "redis_cost_per_trade_us": round(redis_us, 1),
                }
                print(f"batch {batch}: {n} trades; worker CPU per trade "
                      f"{results[f'batch_{batch}']['worker_cpu_per_trade_us_without']} -> "
                      f"{results[f'batch_{batch}']['worker_cpu_per_trade_us_with']} us "
                      f"(+{worker_us:.1f}); redis +{redis_us:.1f} us per trade")
            r.close()
        finally:
            server.stop()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
