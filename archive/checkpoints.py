"""Book checkpoints: a snapshot of a symbol's book at journal sequence K.

The matching worker writes one to Redis (``sym:{S}:checkpoint``) every
``CHECKPOINT_EVERY`` commands, right after the commit that crosses the multiple: the
book in its memory is then exactly Redis's state at K, so the snapshot costs one pass
over the resting orders and one SET, off the commit's critical section.

The archive mover verifies a new checkpoint before trusting it: it replays the journal
from the previous verified checkpoint (or from sequence 1) with the pure engine and
compares books; only then is the checkpoint stored in the archive, and only the journal
at or below the newest verified checkpoint ever leaves Redis. ``archive.verify`` starts
from the newest verified checkpoint and replays the journal after it.
"""

from __future__ import annotations

import logging

import orjson
import redis
import sqlalchemy as sa

from archive import db, tables
from engine import apply
from engine.book import OrderBook
from engine.types import Order, Side
from store import codec, history, journal

log = logging.getLogger(__name__)


def _order_fields(o: Order) -> dict:
    """An engine order in the order hash's field names (``codec.order_from_hash``)."""
    return {"id": o.id, "side": o.side.value, "otype": o.order_type.value,
            "tif": o.time_in_force.value, "price": "" if o.price is None else str(o.price),
            "qty": str(o.quantity), "seq": str(o.sequence), "ts": str(o.timestamp),
            "acct": o.account_id, "post": "1" if o.post_only else "0",
            "stp": o.self_trade_prevention.value, "coid": o.client_order_id or "",
            "filled": str(o.filled), "notional": str(o.notional), "status": o.status.value,
            "reason": o.reason.value if o.reason else "", "upd": str(o.updated_at)}


def snapshot(book: OrderBook) -> dict:
    """The book as plain data: sequences and the resting orders in priority order."""
    return {"seq": book.last_sequence, "tseq": book.trade_sequence,
            "orders": [_order_fields(o) for side in (Side.BUY, Side.SELL)
                       for o in book.iter_orders(side)]}


def restore(symbol: str, snap: dict) -> OrderBook:
    book = OrderBook(symbol)
    book.last_sequence, book.trade_sequence = snap["seq"], snap["tseq"]
    for fields in snap["orders"]:
        book.rest(codec.order_from_hash(fields))
    return book


def maybe_write(r: redis.Redis, book: OrderBook, prev_seq: int, every: int) -> None:
    """After a commit from ``prev_seq`` to ``book.last_sequence``: checkpoint on crossing a
    multiple of ``every`` (0: never)."""
    if every and book.last_sequence // every > prev_seq // every:
        history.write_checkpoint(r, book.symbol, orjson.dumps(snapshot(book)))


def read_after(conn: sa.Connection):
    """A journal reader (``store.journal.read_after``'s shape): the archive's journal
    first, then Redis's, so a replay sees the whole journal wherever it lives."""
    t = tables.journal

    def archived(symbol, after, count):
        return conn.execute(sa.select(t.c.seq, t.c.fields).where(
            t.c.symbol == symbol, t.c.seq > after).order_by(t.c.seq).limit(count)).all()

    def read(r, symbol, after, count):
        rows = archived(symbol, after, count)
        if not rows:
            batch = journal.read_after(r, symbol, after, count)
            if not batch or batch[0][0].sequence == after + 1:
                return batch
            # The mover moved the next entries between the two reads: they are archived.
            rows = archived(symbol, after, count)
        out = []
        for seq, fields in rows:
            f = orjson.loads(fields)
            out.append((codec.command_from_entry(seq, f), f.get("rid", "")))
        return out

    return read


def newest(conn: sa.Connection, symbol: str, at_most: int | None = None) -> dict | None:
    """The newest verified checkpoint in the archive (at or below ``at_most``)."""
    t = tables.checkpoints
    q = sa.select(t.c.book).where(t.c.symbol == symbol)
    if at_most is not None:
        q = q.where(t.c.seq <= at_most)
    body = conn.scalar(q.order_by(t.c.seq.desc()).limit(1))
    return orjson.loads(body) if body else None


def replay_to(r: redis.Redis, conn: sa.Connection, symbol: str, start: dict | None,
              target: int) -> OrderBook:
    """The book at ``target``: ``start`` (a snapshot, or the empty book) plus the journal."""
    book = restore(symbol, start) if start else OrderBook(symbol)
    read = read_after(conn)
    while book.last_sequence < target:
        batch = read(r, symbol, book.last_sequence,
                     min(1000, target - book.last_sequence))
        if not batch:
            raise LookupError(f"{symbol}: journal ends at {book.last_sequence} < {target}")
        for command, _ in batch:
            apply(book, command)
    return book


def verify_new(r: redis.Redis, engine: sa.Engine, symbol: str) -> int:
    """Verify Redis's newest checkpoint against the replay and store it in the archive.

    Returns the newest verified checkpoint's sequence (0: none)."""
    raw = history.read_checkpoint(r, symbol)
    with engine.connect() as conn:
        base = newest(conn, symbol)
        verified = base["seq"] if base else 0
        if raw is None:
            return verified
        snap = orjson.loads(raw)
        if snap["seq"] <= verified:
            return verified
        replayed = snapshot(replay_to(r, conn, symbol, base, snap["seq"]))
    if replayed != snap:
        log.error("%s: checkpoint at %d differs from the journal replay; the journal "
                  "stays in Redis until a checkpoint verifies", symbol, snap["seq"])
        return verified
    with engine.begin() as conn:
        db.insert_ignore(conn, tables.checkpoints, [
            {"symbol": symbol, "seq": snap["seq"], "book": raw if isinstance(raw, str)
             else raw.decode()}])
    return snap["seq"]
