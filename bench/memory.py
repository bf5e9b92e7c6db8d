"""Redis memory per order and per trade: ``python -m bench.memory [--orders 10000]``.

Starts its own redis-server (free port, temp dir; never 6379) and drives the real
accept path (``store.journal.accept_many``: the Lua script) and the real write side
(``workers.apply.SymbolMatcher``: engine + fenced commit), in-process, no HTTP.

Phase 1: N resting GTC BUY limit orders (distinct accounts of 100 orders each,
         prices over 500 levels), all applied.  -> bytes per resting order.
Phase 2: N SELL orders, each filling one BUY completely.  -> bytes per
         (taker order + trade + maker turning final), and the per-trade share.
Figures: INFO used_memory deltas, and MEMORY USAGE (SAMPLES 0) of sample keys
(order hash, fills list) and of the per-symbol structures divided by their length
(journal stream, trades stream, account index zset). The last line printed is one
JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import orjson
import redis

from localrun.processes import RedisServer
from schemas.markets import get_market
from schemas.orders import PlaceOrderSchema
from settings import Settings
from store import journal, keys
from workers.apply import SymbolMatcher
from workers.lease import Lease

SYMBOL = "BTC-USD"
PER_ACCOUNT = 100
CHUNK = 500


def used(r: redis.Redis) -> int:
    gc.collect()
    return int(r.info("memory")["used_memory"])


def usage(r: redis.Redis, key: str) -> int:
    return int(r.memory_usage(key, samples=0) or 0)


def place(r, settings, market, side: str, n: int, price_of) -> list[str]:
    schema = PlaceOrderSchema(settings)
    ids = []
    for start in range(0, n, CHUNK):
        items = []
        for i in range(start, min(n, start + CHUNK)):
            body = {"symbol": SYMBOL, "side": side, "price": str(price_of(i)),
                    "quantity": "0.5", "clientOrderId": f"{side[0]}{i}"}
            items.append((market, f"acct{side}{i // PER_ACCOUNT}", schema.load(body),
                          f"req-{side}-{i}"))
        ids += [a.order_id for a in journal.accept_many(r, items, 1_000_000)]
    return ids


def run(n: int) -> dict:
    settings = Settings()
    market = get_market(settings, SYMBOL)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
            lease = Lease(r, SYMBOL, ttl_ms=600_000)
            assert lease.renew()
            matcher = SymbolMatcher(r, market, lease, settings.replace(worker_batch=1000))

            base = used(r)
            buys = place(r, settings, market, "BUY", n, lambda i: 100 + (i % 500) / 100)
            matcher.drain()
            after_resting = used(r)
            # SELLs priced at each BUY's price, placed best-first: each takes one BUY.
            order = sorted(range(n), key=lambda i: (-(i % 500), i))
            sells = place(r, settings, market, "SELL", n,
                          lambda j: 100 + (order[j] % 500) / 100)
            matcher.drain()
            after_trades = used(r)

            trades = r.xlen(keys.trades(SYMBOL))
            statuses = {r.hget(keys.order(buys[0]), "status"),
                        r.hget(keys.order(sells[-1]), "status")}
            figures = {
                "orders_per_phase": n, "trades": trades, "final_statuses": sorted(statuses),
                "resting_order_bytes_info": round((after_resting - base) / n),
                "filled_pair_plus_trade_bytes_info": round((after_trades - after_resting) / n),
                "order_hash_bytes": usage(r, keys.order(buys[n // 2])),
                "fills_list_bytes": usage(r, keys.order_fills(buys[n // 2])),
                "journal_bytes_per_command": round(
                    usage(r, keys.journal(SYMBOL)) / r.xlen(keys.journal(SYMBOL))),
                "trades_stream_bytes_per_trade": round(
                    usage(r, keys.trades(SYMBOL)) / max(1, trades)),
                "account_index_bytes_per_order": round(
                    usage(r, keys.account_orders(f"acctBUY{0}", SYMBOL)) / PER_ACCOUNT),
                "client_id_hash_bytes_per_order": round(
                    usage(r, keys.account_client_ids(f"acctBUY{0}", SYMBOL)) / PER_ACCOUNT),
                "used_memory_total_mb": round(after_trades / 2**20, 1),
            }
            return figures
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=None,
                        help="orders per phase (default 10000; --sustained: 100000)")
    parser.add_argument("--sustained", action="store_true",
                        help="orders flowing with the archive mover on (bench/sustained.py)")
    parser.add_argument("--no-mover", action="store_true", help="--sustained without the mover")
    parser.add_argument("--postgres", action="store_true",
                        help="--sustained with a PostgreSQL archive of its own")
    parser.add_argument("--after", type=float, default=1.0,
                        help="--sustained: ARCHIVE_AFTER_SECONDS")
    args = parser.parse_args()
    if args.sustained:
        from bench import sustained

        figures = sustained.run(args.orders or 100_000, mover_on=not args.no_mover,
                                after=args.after, postgres=args.postgres)
    else:
        figures = run(args.orders or 10_000)
    for name, value in figures.items():
        print(f"{name:36} {value}")
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
