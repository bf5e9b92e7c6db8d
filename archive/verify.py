"""Verify Redis and the archive together against the journal replay.

``python -m archive.verify [--symbol S] [--rebuild]`` (``make verify``): for each symbol,
replay the whole journal (the archive's older part, then Redis's) with the pure engine and
check that what Redis and the archive hold together is exactly what the replay implies:

* every journaled order exists in Redis or in the archive (in both only in the short
  window between the mover's archive commit and its Redis removal: counted, not an error)
  with the replay's status, reason, filled, notional and fills; an archived order is final;
  a final order still in Redis is queued for the archive (the ``final`` index); Redis's
  account indexes (orders, open orders) agree;
* every trade 1..N exists in the trades stream or the archive, equal to the replay's, and
  nothing else does; the trade sequence and last price agree;
* the resting set and the book levels equal the replayed book.

By default the replay starts from the newest verified book checkpoint
(``archive.checkpoints``) and checks what changed after it; ``--full`` replays from
sequence 1 and checks everything. ``--rebuild`` is ``store.verify``'s rebuild, refused
for a symbol that has archived anything (rebuilding would put archived orders back in
Redis). Exit 0 ``OK``, 1 with the differences.
"""

from __future__ import annotations

import argparse
import sys

import orjson
import redis
import sqlalchemy as sa

from archive import checkpoints, db, tables
from engine.types import FINAL_STATUSES, OrderUpdated, Side
from schemas.markets import Market, get_market
from settings import Settings, load_settings
from store import connect, history
from store import verify as redis_verify

CHUNK = redis_verify.CHUNK


def _archived(conn: sa.Connection, symbol: str):
    o, f, t = tables.orders, tables.order_fills, tables.trades
    orders = {oid: orjson.loads(fields) for oid, fields in conn.execute(
        sa.select(o.c.id, o.c.fields).where(o.c.symbol == symbol))}
    fills: dict[str, list[str]] = {}
    for oid, seq in conn.execute(sa.select(f.c.order_id, f.c.trade_seq).where(
            f.c.symbol == symbol).order_by(f.c.order_id, f.c.trade_seq)):
        fills.setdefault(oid, []).append(str(seq))
    trades = {seq: orjson.loads(body) for seq, body in conn.execute(
        sa.select(t.c.seq, t.c.body).where(t.c.symbol == symbol))}
    return orders, fills, trades


def _redis_orders(r: redis.Redis, rep, ids: list[str]) -> dict:
    """order id -> (hash fields or None, fills, in open index, in account index, in final)."""
    return history.order_states(r, rep.symbol, {oid: rep.places[oid].account_id for oid in ids},
                                CHUNK)


def _order_diffs(symbol, oid, where, h, fills, want, want_fills) -> list[str]:
    diffs = [f"{symbol}: {where} order {oid} {name} is {h.get(name)!r}, replay says {value!r}"
             for name, value in want.items() if (h.get(name) or "") != value]
    if fills != want_fills:
        diffs.append(f"{symbol}: {where} order {oid} fills {fills} != replay {want_fills}")
    return diffs


def _replay(r: redis.Redis, conn: sa.Connection, symbol: str, full: bool):
    """The replay from the newest verified checkpoint (``full``: from sequence 1), with the
    orders resting at the checkpoint in scope as they were there."""
    snap = None if full else checkpoints.newest(conn, symbol)
    book = checkpoints.restore(symbol, snap) if snap else None
    at_checkpoint = dict(book.orders) if book else {}
    rep = redis_verify.replay(r, symbol, read_after=checkpoints.read_after(conn), start=book)
    for oid, o in at_checkpoint.items():
        rep.places.setdefault(oid, o)  # an Order has the fields the checks read
        if oid not in rep.state:  # unchanged since the checkpoint
            rep.state[oid] = OrderUpdated(o, o.status, o.reason, o.filled, o.notional,
                                          o.updated_at, o.quantity)
    return rep, snap


def check_symbol(r: redis.Redis, settings: Settings, market: Market,
                 full: bool = False) -> tuple[list, dict]:
    """Differences for one symbol. From the newest verified checkpoint, what changed after
    it is checked (orders placed or resting since, trades after it); ``full`` replays the
    whole journal and checks everything."""
    symbol = market.symbol
    for _ in range(5):  # a live matcher may move the cursor meanwhile: check again
        with db.engine(settings.archive_url).connect() as conn:
            rep, snap = _replay(r, conn, symbol, full)
            # Redis before the archive: the mover commits there before it removes here, so
            # a row that left Redis before it was read is in the archive when that is read.
            hot = _redis_orders(r, rep, list(rep.places))
            stored_trades = history.all_trades(r, symbol)
            archived, archived_fills, archived_trades = _archived(conn, symbol)
        if history.applied(r, symbol) == rep.applied:
            break
    diffs = list(rep.journal_problems)
    ids = list(rep.places)
    base = snap["tseq"] if snap else 0  # fills up to the checkpoint were checked before it

    def after_base(fills: list[str]) -> list[str]:
        return [f for f in fills if int(f) > base]

    in_both = 0
    for oid in ids:
        h, fills, is_open, listed, queued = hot[oid]
        fills = after_base(fills)
        want = redis_verify._expected_order(rep, oid)
        want_fills = [str(s) for s in rep.fills.get(oid, [])]
        final = want["status"] in FINAL_STATUSES
        if h is None and oid not in archived:
            diffs.append(f"{symbol}: order {oid} (seq {rep.places[oid].sequence}) is in "
                         f"neither Redis nor the archive")
        if oid in archived:
            in_both += h is not None
            diffs += _order_diffs(symbol, oid, "archived", archived[oid],
                                  after_base(archived_fills.get(oid, [])), want, want_fills)
            if not final:
                diffs.append(f"{symbol}: archived order {oid} is {want['status']} by replay")
        if h is not None:
            diffs += _order_diffs(symbol, oid, "Redis", h, fills, want, want_fills)
            if not listed:
                diffs.append(f"{symbol}: order {oid} is missing from its account's index")
            if is_open == final:
                diffs.append(f"{symbol}: order {oid} is {want['status']} but "
                             f"{'in' if is_open else 'not in'} the open index")
            if final and not queued:
                diffs.append(f"{symbol}: final order {oid} is not queued for the archive")
    if snap is None:
        diffs += [f"{symbol}: archived order {oid} is not in the journal"
                  for oid in archived if oid not in rep.places]
    diffs += _trade_diffs(r, market, rep, stored_trades, archived_trades, base)
    diffs += _book_diffs(r, rep)
    counts = {"from_checkpoint": snap["seq"] if snap else 0, "commands": rep.applied,
              "accepted": rep.accepted, "orders": len(ids), "archived": len(archived),
              "in_both": in_both, "trades": len(rep.trades),
              "trades_archived": len(archived_trades), "resting": len(rep.book.orders)}
    return diffs, counts


def _trade_diffs(r: redis.Redis, market: Market, rep, stored: dict, archived_trades: dict,
                 base: int) -> list[str]:
    """Trades after ``base`` (the checkpoint's trade sequence) against the replay's."""
    symbol = market.symbol
    stored = {s: t for s, t in stored.items() if s > base}
    archived_trades = {s: t for s, t in archived_trades.items() if s > base}
    diffs = []
    for seq, e in enumerate(rep.trades, start=base + 1):
        want = redis_verify._expected_trade(market, e)
        copies = [c for c in (stored.get(seq), archived_trades.get(seq)) if c is not None]
        if not copies:
            diffs.append(f"{symbol}: trade {seq} is in neither Redis nor the archive")
        diffs += [f"{symbol}: trade {seq} is {c}, replay says {want}" for c in copies
                  if c != want]
    last = base + len(rep.trades)
    extra = sorted((set(stored) | set(archived_trades)) - set(range(base + 1, last + 1)))
    if extra:
        diffs.append(f"{symbol}: trades {extra[:10]} are stored but not in the replay")
    trade_seq, last_price = history.last_trade(r, symbol)
    if trade_seq != last:
        diffs.append(f"{symbol}: trade sequence is {trade_seq}, replay says {last}")
    if rep.trades and last_price != str(rep.trades[-1].price):
        diffs.append(f"{symbol}: last price differs from the replay's {rep.trades[-1].price}")
    return diffs


def _book_diffs(r: redis.Redis, rep) -> list[str]:
    symbol, diffs = rep.symbol, []
    stored = history.resting_set(r, symbol)
    if stored != {oid: o.sequence for oid, o in rep.book.orders.items()}:
        diffs.append(f"{symbol}: resting set differs from the replayed book")
    for side in (Side.BUY, Side.SELL):
        have = sorted(history.level_members(r, symbol, side.value))
        if have != sorted(redis_verify._expected_levels(rep, side)):
            diffs.append(f"{symbol}: {side.value} levels differ from the replayed book")
    return diffs


def _queue_final(r: redis.Redis, symbol: str) -> None:
    """A rebuild does not know the archive's index: queue every final order again."""
    rep = redis_verify.replay(r, symbol)
    final = {oid: e.updated_at for oid, e in rep.state.items() if e.status in FINAL_STATUSES}
    history.queue_final(r, symbol, final, CHUNK)


def verify(r: redis.Redis, settings: Settings, symbols=None, full: bool = False) -> list[str]:
    """Every difference between Redis + archive and the journal replay ([] when consistent)."""
    out = []
    for symbol in symbols or settings.symbols:
        out += check_symbol(r, settings, get_market(settings, symbol), full)[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m archive.verify",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbol", action="append", help="only this symbol (repeatable)")
    parser.add_argument("--full", action="store_true",
                        help="replay from sequence 1, not from the newest checkpoint")
    parser.add_argument("--rebuild", action="store_true",
                        help="rewrite Redis's derived state from the replay (nothing archived)")
    args = parser.parse_args(argv)
    settings = load_settings()
    r = connect.tool_client(settings)
    db.migrate(settings.archive_url)
    failed = False
    for symbol in args.symbol or settings.symbols:
        market = get_market(settings, symbol)
        if args.rebuild:
            if history.is_archived(r, symbol):
                print(f"REFUSED {symbol}: history was archived; a rebuild would double it")
                failed = True
                continue
            counts = redis_verify.rebuild_symbol(r, market)
            _queue_final(r, symbol)
            print(f"{symbol}: REBUILT " + " ".join(f"{k}={v}" for k, v in counts.items()))
        diffs, counts = check_symbol(r, settings, market, args.full)
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        failed |= bool(diffs)
        print(f"{symbol}: {len(diffs)} DIFFERENCES ({summary})" if diffs
              else f"{symbol}: OK {summary}")
        for d in diffs[:redis_verify.MAX_REPORTED]:
            print(f"  {d}")
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
