"""Redis memory under sustained flow, with the archive mover on or off.

``python -m bench.memory --sustained [--orders 100000] [--no-mover] [--postgres]``
(``make bench-memory``). Own redis-server and archive (a temp SQLite file, or with
``--postgres`` a PostgreSQL of its own, as the tests start it); the real accept path, the
real matcher and the real mover, in-process, no HTTP.

The flow, per 1000 orders: pairs of crossing GTC orders (both FILLED, one trade), one in
ten a resting BUY far from the market that is cancelled 2000 orders later (so about 200
orders stay open), and an IOC that finds no liquidity (CANCELLED). The matcher
checkpoints every 10,000 commands. Every ``--move-every`` orders the mover
runs (ARCHIVE_AFTER_SECONDS = ``--after``). Prints Redis used_memory over time, Redis bytes
per open order at the end, and the archive's rows and bytes per order moved.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path

import redis
import sqlalchemy as sa

from archive import db, tables
from archive.mover import Mover
from localrun.processes import RedisServer
from schemas.markets import get_market
from schemas.orders import PlaceOrderSchema
from settings import Settings
from store import journal, keys
from workers.apply import SymbolMatcher
from workers.lease import Lease

SYMBOL = "BTC-USD"
CHUNK = 1000


def _used(r: redis.Redis) -> int:
    gc.collect()
    return int(r.info("memory")["used_memory"])


def local_matcher(server, settings: Settings):
    """The archive migrated, and SYMBOL's matcher in this process holding the lease:
    (redis client, market, place schema, matcher)."""
    db.migrate(settings.archive_url)
    market = get_market(settings, SYMBOL)
    r = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    lease = Lease(r, SYMBOL, ttl_ms=3_600_000)
    assert lease.renew()
    matcher = SymbolMatcher(r, market, lease, settings.replace(worker_batch=1000))
    return r, market, PlaceOrderSchema(settings), matcher


def _flow(schema, market, start: int, n: int):
    """(accept items, ids to cancel later) for orders start..start+n."""
    items, resting = [], []
    for i in range(start, start + n):
        account = f"acct{i % 50}"
        if i % 10 == 0:
            body = {"symbol": SYMBOL, "side": "BUY", "price": "50", "quantity": "1"}
            resting.append(i)
        elif i % 10 == 5:  # no ask at or below 50: CANCELLED (NO_LIQUIDITY), no trade
            body = {"symbol": SYMBOL, "side": "BUY", "price": "50", "quantity": "1",
                    "timeInForce": "IOC"}
        else:
            side = "BUY" if i % 2 else "SELL"
            body = {"symbol": SYMBOL, "side": side, "price": "100", "quantity": "1"}
        items.append((market, account, schema.load(body), f"req-{i}"))
    return items, resting


def feed(r, schema, market, matcher, start: int, n: int, to_cancel: list[str]) -> int:
    """Journal orders start..start+n of the ``_flow`` mix, cancel the oldest resting ones
    past 200 open, and let the matcher apply it all; returns n."""
    items, resting = _flow(schema, market, start, n)
    accepted = journal.accept_many(r, items, 1_000_000)
    to_cancel += [accepted[i - start].order_id for i in resting]
    while len(to_cancel) > 200:
        journal.request_cancel(r, to_cancel.pop(0), None, "bench-cancel")
    matcher.drain()
    return len(items)


def _archive_size(url: str) -> int:
    eng = db.engine(url)
    if eng.dialect.name == "sqlite":
        path = Path(eng.url.database)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with eng.connect() as conn:
        return int(conn.scalar(sa.text("SELECT pg_database_size(current_database())")))


def _archive_rows(url: str) -> dict:
    with db.engine(url).connect() as conn:
        return {str(t.name): conn.scalar(sa.select(sa.func.count()).select_from(t))
                for t in tables.metadata.sorted_tables}


def run(orders: int, mover_on: bool = True, after: float = 1.0, move_every: int = 10_000,
        postgres: bool = False, report=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-sustained-") as tmp:
        pg = None
        if postgres:
            from localrun.postgres import PostgresServer

            pg = PostgresServer().start()
            url = pg.url
        else:
            url = f"sqlite:///{os.path.join(tmp, 'archive.sqlite3')}"
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            return _run(server, url, orders, mover_on, after, move_every, report)
        finally:
            server.stop()
            db.dispose_all()
            if pg:
                pg.cleanup()


def _run(server, url, orders, mover_on, after, move_every, report) -> dict:
    settings = Settings(redis_url=server.url, archive_url=url, archive_after_seconds=after,
                        archive_batch=2000, checkpoint_every=10_000)
    r, market, schema, matcher = local_matcher(server, settings)
    mover = Mover(r, settings, SYMBOL)
    base = _used(r)
    samples, to_cancel, moved, move_seconds = [], [], 0, 0.0
    started = time.perf_counter()
    report(f"{'orders':>9} {'open':>6} {'redis MB':>9} {'archived':>9} {'archive MB':>10}")
    for start in range(0, orders, CHUNK):
        done = start + feed(r, schema, market, matcher, start, min(CHUNK, orders - start),
                            to_cancel)
        if mover_on and done % move_every == 0:
            t0 = time.perf_counter()
            moved += mover.run(budget_seconds=60).orders
            move_seconds += time.perf_counter() - t0
        if done % move_every == 0 or done == orders:
            sample = {"orders": done, "open": r.zcard(keys.resting(SYMBOL)),
                      "used_memory": _used(r), "archived": moved,
                      "archive_bytes": _archive_size(url) if mover_on else 0}
            samples.append(sample)
            report(f"{done:>9} {sample['open']:>6} {sample['used_memory'] / 2**20:>9.1f} "
                   f"{moved:>9} {sample['archive_bytes'] / 2**20:>10.1f}")
    elapsed = time.perf_counter() - started
    final = samples[-1]
    warm = samples[len(samples) // 4] if len(samples) >= 4 else samples[0]
    rows = _archive_rows(url)
    figures = {
        "orders": orders, "mover": mover_on, "archive": db.engine(url).dialect.name,
        "after_seconds": after, "elapsed_s": round(elapsed, 1),
        "redis_used_memory_mb_after_warmup": round(warm["used_memory"] / 2**20, 2),
        "redis_used_memory_mb_end": round(final["used_memory"] / 2**20, 2),
        "redis_growth_after_warmup_mb": round((final["used_memory"] - warm["used_memory"])
                                              / 2**20, 2),
        "open_orders_end": final["open"],
        "redis_bytes_per_open_order": round((final["used_memory"] - base)
                                            / max(1, final["open"])),
        "archived_orders": moved, "archive_rows": rows,
        "archive_bytes": final["archive_bytes"],
        "archive_bytes_per_archived_order": round(final["archive_bytes"] / max(1, moved)),
        "archive_rows_per_archived_order": round(sum(rows.values()) / max(1, moved), 2),
        "mover_orders_per_s": round(moved / move_seconds) if move_seconds else None,
    }
    return figures
