"""REST reads over Redis and the archive together: the same JSON, cursors that walk on.

Redis answers first; the archive is asked only when a symbol has moved something there
(its ``archived`` flag, set by the mover) and Redis alone cannot complete the answer. So
a service that never archived, or a page that Redis fills, never touches the database,
and the archive being down only affects reads that need it (503 ``ARCHIVE_UNAVAILABLE``).

Why nothing is missed or repeated while the mover works: it commits rows in the archive
before it removes them from Redis, so a row gone from Redis when Redis is read is already
committed when the archive is read just after; rows seen in both are the same and are
merged by their key (order id, trade sequence).
"""

from __future__ import annotations

from contextlib import contextmanager

import orjson
import redis
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from archive import db, tables
from schemas.markets import Market
from store import events, history, read

OPEN_STATUSES = read.OPEN_STATUSES


@contextmanager
def _archive(settings):
    """A connection to the archive; any database failure becomes ``ArchiveUnavailable``."""
    try:
        with db.engine(settings.archive_url).connect() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise db.ArchiveUnavailable(str(exc).splitlines()[0]) from exc


def archive_in_use(r: redis.Redis, symbols) -> bool:
    return history.archive_in_use(r, symbols)


# ---------------------------------------------------------------- one order


def order_with_fills(r: redis.Redis, settings, markets: dict[str, Market], order_id: str,
                     owner: str | None = None) -> dict | None:
    """The order's JSON with ``fills``, from Redis or the archive; None if unknown (or
    not ``owner``'s)."""
    h, seqs = history.order_and_fills(r, order_id)
    if h is None and not archive_in_use(r, markets):
        return None
    if h is None:
        with _archive(settings) as conn:
            row = conn.execute(sa.select(tables.orders.c.fields)
                               .where(tables.orders.c.id == order_id)).first()
            if row is None:
                return None
            h = orjson.loads(row.fields)
            seqs = list(conn.scalars(
                sa.select(tables.order_fills.c.trade_seq)
                .where(tables.order_fills.c.order_id == order_id)
                .order_by(tables.order_fills.c.trade_seq)))
    if owner is not None and h["acct"] != owner:
        return None
    order = events.order_from_hash(h, markets[h["sym"]])
    order["fills"] = trades_by_sequence(r, settings, h["sym"], seqs)
    return order


def trades_by_sequence(r: redis.Redis, settings, symbol: str, seqs: list[int]) -> list[dict]:
    """Trades of SYMBOL by sequence, in the order given: Redis's stream, else the archive."""
    if not seqs:
        return []
    found = history.hot_trades(r, symbol, seqs)
    missing = [s for s in seqs if s not in found]
    if missing:
        t = tables.trades
        with _archive(settings) as conn:
            for seq, body in conn.execute(sa.select(t.c.seq, t.c.body).where(
                    t.c.symbol == symbol, t.c.seq.in_(missing))):
                found[seq] = orjson.loads(body)
    return [found[s] for s in seqs if s in found]


def archived_status(r: redis.Redis, settings, markets, order_id: str,
                    owner: str | None) -> str | None:
    """The status of an order that only the archive holds (a cancel of it is a 409)."""
    order = order_with_fills(r, settings, markets, order_id, owner)
    return order["status"] if order else None


# ---------------------------------------------------------------- an account's orders


def list_orders(r: redis.Redis, settings, markets: dict[str, Market], account: str, *,
                symbol=None, statuses=None, side=None, limit=100,
                cursor=None) -> tuple[list[dict], str | None]:
    """``store.read.list_orders`` over Redis and the archive, merged newest first.

    Both keep each order's acceptance number ``n`` (store/keys.py), and the cursor
    is ``(n, id)`` in both, so each source gives its newest ``limit + 1`` below the cursor
    and the page is the newest ``limit`` of their union.
    """
    only_open = statuses is not None and statuses <= OPEN_STATUSES
    if only_open or not archive_in_use(r, [symbol] if symbol else markets):
        return read.list_orders(r, markets, account, symbol=symbol, statuses=statuses,
                                side=side, limit=limit, cursor=cursor)
    hot, _ = read.list_orders(r, markets, account, symbol=symbol, statuses=statuses,
                              side=side, limit=limit + 1, cursor=cursor)
    numbers = read.order_numbers(r, [o["id"] for o in hot])
    # An order archived since Redis was read has no hash now: the archive returns it.
    merged = {o["id"]: (n, o) for o, n in zip(hot, numbers, strict=True) if n}
    for n, oid, order in _archived_orders(settings, markets, account, symbol, statuses,
                                          side, limit + 1, cursor):
        merged.setdefault(oid, (n, order))
    page = sorted(merged.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=True)
    out = [order for _, (_, order) in page[:limit]]
    if len(page) <= limit:
        return out, None
    last_id, (last_n, _) = page[limit - 1]
    return out, read.encode_cursor(last_n, last_id)


def _archived_orders(settings, markets, account, symbol, statuses, side, limit, cursor):
    t = tables.orders
    q = sa.select(t.c.n, t.c.id, t.c.fields).where(t.c.account == account)
    if symbol:
        q = q.where(t.c.symbol == symbol)
    if statuses:
        q = q.where(t.c.status.in_(sorted(statuses)))
    if side:
        q = q.where(t.c.side == getattr(side, "value", side))
    if cursor:
        score, member = read.decode_cursor(cursor, 2)  # checked by store.read already
        q = q.where(sa.or_(t.c.n < score, sa.and_(t.c.n == score, t.c.id < member)))
    q = q.order_by(t.c.n.desc(), t.c.id.desc()).limit(limit)
    with _archive(settings) as conn:
        rows = conn.execute(q).all()
    out = []
    for n, oid, fields in rows:
        h = orjson.loads(fields)
        out.append((n, oid, events.order_from_hash(h, markets[h["sym"]])))
    return out


# ---------------------------------------------------------------- trades


def trades(r: redis.Redis, settings, market: Market, limit: int = 100,
           cursor: str | None = None) -> tuple[list[dict], str | None]:
    """``store.read.trades``, continued in the archive below the oldest trade in Redis."""
    out, next_cursor = read.trades(r, market, limit, cursor)
    if next_cursor is not None:
        return out, next_cursor  # Redis has more below this page
    if out:
        bound = out[-1]["sequence"]
    elif cursor:
        (bound,) = read.decode_cursor(cursor, 1)
    else:
        bound = None
    if bound == 1 or not archive_in_use(r, [market.symbol]):
        return out, None
    t = tables.trades
    q = sa.select(t.c.body).where(t.c.symbol == market.symbol)
    if bound is not None:
        q = q.where(t.c.seq < bound)
    q = q.order_by(t.c.seq.desc()).limit(limit + 1 - len(out))
    with _archive(settings) as conn:
        combined = out + [orjson.loads(body) for body in conn.scalars(q)]
    if len(combined) <= limit:
        return combined, None
    combined = combined[:limit]
    return combined, read.encode_cursor(combined[-1]["sequence"])


def latest_trades(r: redis.Redis, settings, market: Market, limit: int = 20) -> list[dict]:
    return trades(r, settings, market, limit)[0]
