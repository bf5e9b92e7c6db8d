"""Verify (and rebuild) the derived state of every symbol from its journal.

The journal is the source of truth. For each symbol this replays the journal from
sequence 1 through the applied cursor with the pure engine (``engine.apply`` on a fresh
``OrderBook``) and compares the result with what Redis holds:

* every journaled order hash: status, reason, filled, notional, quantity (a reduce lowers
  it; orders after the cursor must still be PENDING with nothing filled), its place in
  the account's order and open indexes, its clientOrderId mapping;
* the resting set (resting orders and untriggered stops: ids and sequence scores) and
  the book level zsets;
* the trades stream: every trade, entry ids gap-free 1..N, the trade sequence, last price;
* the candles of every interval (store/candles.py) and the minute volume buckets behind
  /api/markets volume24h, recomputed from the trades;
* every order's fills list;
* the journal itself: entries 1..seq without a gap, cursor <= seq.

Run ``python -m store.verify [--symbol S] [--rebuild]`` (REDIS_URL from
``settings.load_settings()``): exit 0 with ``OK`` and counts, exit 1 naming each
difference. ``--rebuild`` rewrites the derived state from the replay in one MULTI/EXEC per
symbol, fenced like a commit: it takes the symbol's lease (``workers.lease.Lease``) and
WATCHes the lease and the cursor, and refuses while a worker holds the lease.

Run it on a quiet system or not: a symbol whose cursor moves during the check is checked
again (a few times) so a live worker does not produce false differences.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import orjson
import redis

from engine import apply
from engine.book import OrderBook
from engine.types import FINAL_STATUSES, OrderUpdated, PlaceOrder, Side, TradeExecuted
from schemas.market_data import INTERVALS
from schemas.markets import Market, get_market
from settings import Settings, load_settings
from store import candles, codec, connect, events, journal, keys
from store.commit import VOLUME_BUCKET_MS

CHUNK = 1000
MAX_REPORTED = 50  # differences named per symbol before summarising
VOLUME_KEEP_MS = 90_000_000  # the worker keeps 25 h of minute buckets (workers.runtime)


class RebuildRefused(Exception):
    """A worker holds the symbol's lease (stop it first), or the fence moved."""


@dataclass
class Replay:
    """The state the journal implies for one symbol at its applied cursor."""

    symbol: str
    applied: int
    accepted: int
    book: OrderBook
    places: dict = field(default_factory=dict)  # order id -> PlaceOrder (whole journal)
    state: dict = field(default_factory=dict)  # order id -> last OrderUpdated (<= cursor)
    trades: list = field(default_factory=list)  # TradeExecuted in order
    fills: dict = field(default_factory=dict)  # order id -> [trade seq]
    journal_problems: list = field(default_factory=list)


def _decoding(r: redis.Redis) -> redis.Redis:
    """The journal codec wants str replies; tests may hand us a bytes client (a Redis
    Cluster client comes from store.connect.tool_client, decoding already)."""
    if isinstance(r, redis.RedisCluster):
        return r
    kwargs = r.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        return r
    return redis.Redis(connection_pool=r.connection_pool.__class__(
        connection_class=r.connection_pool.connection_class,
        **{**kwargs, "decode_responses": True}))


def replay(r: redis.Redis, symbol: str, read_after=journal.read_after,
           start: OrderBook | None = None) -> Replay:
    """Replay SYMBOL's journal through its applied cursor with the pure engine.

    ``read_after`` reads the journal and ``start`` is the book to start from (a checkpoint;
    ``archive.verify`` passes both: the journal's archived part is read first)."""
    applied = int(r.get(keys.applied(symbol)) or 0)
    accepted = journal.last_sequence(r, symbol)
    rep = Replay(symbol, applied, accepted, start or OrderBook(symbol))
    after = rep.book.last_sequence
    expected_seq = after + 1
    while True:
        batch = read_after(r, symbol, after, CHUNK)
        if not batch or after >= accepted:
            break
        for command, _rid in batch:
            seq = command.sequence
            if seq > accepted:  # journaled after we read the accept sequence (a live
                break  # worker's GTD expiry, say): the next check covers it
            if seq != expected_seq:
                rep.journal_problems.append(
                    f"{symbol}: journal gap: expected sequence {expected_seq}, found {seq}")
            expected_seq = seq + 1
            after = seq
            if isinstance(command, PlaceOrder):
                rep.places[command.order_id] = command
            if seq > applied:
                continue
            for e in apply(rep.book, command):
                kind = type(e)
                if kind is OrderUpdated:
                    rep.state[e.order.id] = e
                elif kind is TradeExecuted:
                    rep.trades.append(e)
                    rep.fills.setdefault(e.maker_order_id, []).append(e.sequence)
                    rep.fills.setdefault(e.taker_order_id, []).append(e.sequence)
    if after != accepted:
        rep.journal_problems.append(
            f"{symbol}: journal ends at {after} but the accept sequence is {accepted}")
    if applied > after:
        rep.journal_problems.append(
            f"{symbol}: applied cursor {applied} is past the journal's end {after}")
    return rep


# ------------------------------------------------------------------ expected values


def _expected_order(rep: Replay, order_id: str) -> dict:
    e = rep.state.get(order_id)
    if e is None:  # not applied yet
        return {"status": "PENDING", "reason": "", "filled": "0", "notional": "0",
                "qty": str(rep.places[order_id].quantity)}
    return {"status": e.status.value, "reason": e.reason.value if e.reason else "",
            "filled": str(e.filled), "notional": str(e.notional), "qty": str(e.quantity)}


def _expected_resting(rep: Replay) -> dict[str, int]:
    """The resting set: resting orders and untriggered stops, scored by sequence."""
    out = {oid: o.sequence for oid, o in rep.book.orders.items()}
    out.update((oid, o.sequence) for oid, o in rep.book.stops.items())
    return out


def _expected_levels(rep: Replay, side: Side) -> list[tuple[str, int]]:
    return [(codec.encode_level(p, q, n), p) for p, q, n in rep.book.levels(side)]


def _expected_trade(market: Market, e: TradeExecuted) -> dict:
    return events.trade(market, e)


# ------------------------------------------------------------------ compare


def _compare(r: redis.Redis, market: Market, rep: Replay) -> tuple[list[str], dict]:
    symbol = market.symbol
    diffs = list(rep.journal_problems)
    ids = list(rep.places)
    # Orders: hash fields, open index, fills lists.
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        with r.pipeline(transaction=False) as pipe:
            for oid in chunk:
                pipe.hmget(keys.order(oid), "status", "reason", "filled", "notional", "qty")
                pipe.zscore(keys.account_open(rep.places[oid].account_id, symbol), oid)
                pipe.lrange(keys.order_fills(oid), 0, -1)
                pipe.zscore(keys.account_orders(rep.places[oid].account_id, symbol), oid)
                coid = rep.places[oid].client_order_id
                if coid:
                    pipe.hget(keys.account_client_ids(rep.places[oid].account_id, symbol), coid)
                else:  # a keyed placeholder (a Cluster pipeline refuses keyless ECHO)
                    pipe.exists(keys.order(oid))
            replies = pipe.execute()
        for i, oid in enumerate(chunk):
            got, open_score, fills, listed, coid_owner = replies[5 * i: 5 * i + 5]
            if not rep.places[oid].client_order_id:
                coid_owner = oid
            if listed is None:
                diffs.append(f"{symbol}: order {oid} is missing from its account's index")
            if coid_owner != oid:
                diffs.append(f"{symbol}: clientOrderId of {oid} maps to {coid_owner!r}")
            want = _expected_order(rep, oid)
            if got[0] is None:
                diffs.append(f"{symbol}: order {oid} (seq {rep.places[oid].sequence}) is missing")
                continue
            for name, have in zip(("status", "reason", "filled", "notional", "qty"), got,
                                  strict=True):
                if (have or "") != want[name]:
                    diffs.append(f"{symbol}: order {oid} {name} is {have!r}, "
                                 f"replay says {want[name]!r}")
            is_final = want["status"] in FINAL_STATUSES
            if is_final and open_score is not None:
                diffs.append(f"{symbol}: order {oid} is {want['status']} but in the open index")
            if not is_final and open_score is None:
                diffs.append(f"{symbol}: order {oid} is {want['status']} but not in the "
                             f"open index")
            want_fills = [str(s) for s in rep.fills.get(oid, [])]
            if fills != want_fills:
                diffs.append(f"{symbol}: order {oid} fills {fills} != replay {want_fills}")
    # Resting set.
    stored = dict(r.zrange(keys.resting(symbol), 0, -1, withscores=True))
    want_rest = _expected_resting(rep)
    for oid in sorted(set(stored) | set(want_rest)):
        if oid not in want_rest:
            diffs.append(f"{symbol}: resting set holds {oid}, which the replay does not rest")
        elif oid not in stored:
            diffs.append(f"{symbol}: resting set lacks {oid} (rests in the replay)")
        elif int(stored[oid]) != want_rest[oid]:
            diffs.append(f"{symbol}: resting score of {oid} is {stored[oid]}, "
                         f"expected {want_rest[oid]}")
    # Book levels.
    for side in (Side.BUY, Side.SELL):
        have = [(m, int(s)) for m, s in r.zrange(keys.book(symbol, side.value), 0, -1,
                                                   withscores=True)]
        want = sorted(_expected_levels(rep, side), key=lambda x: (x[1], x[0]))
        have.sort(key=lambda x: (x[1], x[0]))
        if have != want:
            extra = sorted(set(have) - set(want))[:5]
            lack = sorted(set(want) - set(have))[:5]
            diffs.append(f"{symbol}: {side.value} levels differ: stored extra {extra}, "
                         f"missing {lack}")
    # Trades stream: gap-free 1..N, each equal to the replay's trade.
    n = 0
    last_id = "-"
    want_trades = rep.trades
    while True:
        entries = r.xrange(keys.trades(symbol), min=last_id, count=CHUNK)
        if last_id != "-":
            entries = entries[1:]
        if not entries:
            break
        for eid, f in entries:
            n += 1
            seq = keys.sequence_of(eid)
            if seq != n or not eid.endswith("-1"):
                diffs.append(f"{symbol}: trade stream entry {eid} where {n}-1 was due "
                             f"(gap or doubled trade)")
                n = seq
            if seq - 1 < len(want_trades) and seq >= 1:
                want = _expected_trade(market, want_trades[seq - 1])
                have = orjson.loads(f["t"])
                if have != want:
                    diffs.append(f"{symbol}: trade {seq} is {have}, replay says {want}")
            else:
                diffs.append(f"{symbol}: trade {seq} is stored but the replay has only "
                             f"{len(want_trades)} trades")
        last_id = entries[-1][0]
    if n < len(want_trades):
        diffs.append(f"{symbol}: {len(want_trades) - n} trades missing from the stream "
                     f"(stored {n}, replay {len(want_trades)})")
    trade_seq = int(r.get(keys.trade_seq(symbol)) or 0)
    if trade_seq != len(want_trades) or rep.book.trade_sequence != len(want_trades):
        diffs.append(f"{symbol}: trade sequence is {trade_seq}, replay says "
                     f"{rep.book.trade_sequence} ({len(want_trades)} trades)")
    if want_trades:
        last = r.get(keys.last_price(symbol))
        if last != str(want_trades[-1].price):
            diffs.append(f"{symbol}: last price {last!r}, replay says {want_trades[-1].price}")
    diffs += _compare_candles(r, symbol, want_trades)
    counts = {"commands": rep.applied, "accepted": rep.accepted, "orders": len(ids),
              "resting": len(want_rest), "trades": len(want_trades)}
    return diffs, counts


def _compare_candles(r: redis.Redis, symbol: str, trades: list) -> list[str]:
    diffs = []
    made = [(e.timestamp, e.price, e.quantity) for e in trades]
    for name, length in INTERVALS.items():
        want = [candles.encode(c) for _, c in sorted(candles.from_trades(made, length).items())]
        have = r.zrange(keys.candles(symbol, name), 0, -1)
        if have != want:
            extra = sorted(set(have) - set(want))[:3]
            lack = sorted(set(want) - set(have))[:3]
            diffs.append(f"{symbol}: {name} candles differ from the trades: stored extra "
                         f"{extra}, missing {lack}")
    # Minute volume (lots) behind volume24h: pruned past 25 h, so every stored bucket must
    # be right and every bucket of the last 24 h must be there.
    want_volume = {start // VOLUME_BUCKET_MS: c[5]
                   for start, c in candles.from_trades(made, VOLUME_BUCKET_MS).items()}
    have_volume = {int(k): int(v) for k, v in r.hgetall(keys.volume(symbol)).items()}
    recent = candles.window_start(int(time.time() * 1000)) // VOLUME_BUCKET_MS
    for minute in sorted(set(have_volume) | {m for m in want_volume if m >= recent}):
        if have_volume.get(minute) != want_volume.get(minute):
            diffs.append(f"{symbol}: volume of minute {minute} is {have_volume.get(minute)}, "
                         f"the trades say {want_volume.get(minute)}")
    return diffs


def check_symbol(r: redis.Redis, market: Market, attempts: int = 5) -> tuple[list[str], dict]:
    """Differences for one symbol; retried while a live worker moves the cursor."""
    r = _decoding(r)
    for _ in range(attempts):
        rep = replay(r, market.symbol)
        diffs, counts = _compare(r, market, rep)
        if int(r.get(keys.applied(market.symbol)) or 0) == rep.applied:
            return diffs, counts
        time.sleep(0.05)
    return diffs, counts


def verify(r: redis.Redis, settings: Settings, symbols=None) -> list[str]:
    """Every difference between Redis and the journal replay ([] when consistent)."""
    out: list[str] = []
    rd = _decoding(r)
    try:
        for symbol in symbols or settings.symbols:
            diffs, _ = check_symbol(rd, get_market(settings, symbol))
            out.extend(diffs)
    finally:
        if rd is not r:
            rd.connection_pool.disconnect()
    return out


# ------------------------------------------------------------------ rebuild


def rebuild_symbol(r: redis.Redis, market: Market, lease_ttl_ms: int = 60_000) -> dict:
    """Rewrite SYMBOL's derived state from the journal replay, fenced; returns counts.

    Raises ``RebuildRefused`` while a worker holds the lease or if the cursor moved.
    """
    from workers.lease import Lease  # the worker package is only needed here

    r = _decoding(r)
    symbol = market.symbol
    lease = Lease(r, symbol, ttl_ms=lease_ttl_ms)
    if not lease.renew():
        raise RebuildRefused(f"{symbol}: a worker holds the lease; stop it and retry")
    try:
        rep = replay(r, symbol)
        if rep.journal_problems:
            raise RebuildRefused("; ".join(rep.journal_problems))
        ids = list(rep.places)
        with r.pipeline(transaction=False) as pipe:
            for oid in ids:
                pipe.hget(keys.order(oid), "n")  # the account index score
            list_scores = dict(zip(ids, pipe.execute(), strict=True))
        with r.pipeline() as pipe:
            try:
                pipe.watch(keys.owner(symbol), keys.applied(symbol))
                owner, applied = pipe.mget(keys.owner(symbol), keys.applied(symbol))
                if owner != lease.token or int(applied or 0) != rep.applied:
                    raise RebuildRefused(f"{symbol}: lease or cursor moved; retry")
                pipe.multi()
                _write_rebuild(pipe, market, rep, list_scores)
                pipe.execute()
            except redis.WatchError:
                raise RebuildRefused(f"{symbol}: lease or cursor changed; retry") from None
        return {"orders": len(ids), "resting": len(rep.book.orders), "trades": len(rep.trades)}
    finally:
        lease.release()


def _write_rebuild(pipe, market: Market, rep: Replay, list_scores: dict) -> None:
    symbol = market.symbol
    for oid, place in rep.places.items():
        want = _expected_order(rep, oid)
        e = rep.state.get(oid)
        mapping = dict(want)
        if e is not None:
            mapping["upd"] = e.updated_at
            mapping["rank"] = e.order.rank
        pipe.hset(keys.order(oid), mapping=mapping)
        open_key = keys.account_open(place.account_id, symbol)
        if want["status"] in FINAL_STATUSES:
            pipe.zrem(open_key, oid)
        else:
            pipe.zadd(open_key, {oid: int(list_scores.get(oid) or 0)})
        pipe.delete(keys.order_fills(oid))
        if rep.fills.get(oid):
            pipe.rpush(keys.order_fills(oid), *rep.fills[oid])
    pipe.delete(keys.resting(symbol))
    resting = _expected_resting(rep)
    for start in range(0, len(resting), CHUNK):
        part = dict(list(resting.items())[start:start + CHUNK])
        pipe.zadd(keys.resting(symbol), part)
    for side in (Side.BUY, Side.SELL):
        key = keys.book(symbol, side.value)
        pipe.delete(key)
        levels = dict(_expected_levels(rep, side))
        if levels:
            pipe.zadd(key, levels)
    pipe.delete(keys.trades(symbol), keys.volume(symbol))
    cutoff = (int(time.time() * 1000) - VOLUME_KEEP_MS) // VOLUME_BUCKET_MS
    volume: dict[int, int] = {}
    for e in rep.trades:
        pipe.xadd(keys.trades(symbol), {"t": orjson.dumps(_expected_trade(market, e))},
                  id=keys.stream_id(e.sequence))
        bucket = e.timestamp // VOLUME_BUCKET_MS
        if bucket >= cutoff:
            volume[bucket] = volume.get(bucket, 0) + e.quantity
    if volume:
        pipe.hset(keys.volume(symbol), mapping=volume)
    made = [(e.timestamp, e.price, e.quantity) for e in rep.trades]
    for name, length in INTERVALS.items():
        key = keys.candles(symbol, name)
        pipe.delete(key)
        built = candles.from_trades(made, length)
        if built:
            pipe.zadd(key, {candles.encode(c): start for start, c in built.items()})
    if rep.trades:
        pipe.set(keys.trade_seq(symbol), rep.trades[-1].sequence)
        pipe.set(keys.last_price(symbol), rep.trades[-1].price)
    else:
        pipe.delete(keys.trade_seq(symbol), keys.last_price(symbol))


# ------------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.verify", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--symbol", action="append", help="only this symbol (repeatable)")
    parser.add_argument("--rebuild", action="store_true",
                        help="rewrite the derived state from the journal replay")
    args = parser.parse_args(argv)
    settings = load_settings()
    r = connect.tool_client(settings)
    symbols = args.symbol or list(settings.symbols)
    failed = False
    for symbol in symbols:
        try:
            market = get_market(settings, symbol)
        except LookupError:
            print(f"{symbol}: unknown market", file=sys.stderr)
            failed = True
            continue
        if args.rebuild:
            try:
                counts = rebuild_symbol(r, market)
            except RebuildRefused as exc:
                print(f"REFUSED {exc}")
                failed = True
                continue
            print(f"{symbol}: REBUILT " + " ".join(f"{k}={v}" for k, v in counts.items()))
        diffs, counts = check_symbol(r, market)
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        if diffs:
            failed = True
            print(f"{symbol}: {len(diffs)} DIFFERENCES ({summary})")
            for d in diffs[:MAX_REPORTED]:
                print(f"  {d}")
            if len(diffs) > MAX_REPORTED:
                print(f"  ... and {len(diffs) - MAX_REPORTED} more")
        else:
            print(f"{symbol}: OK {summary}")
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
