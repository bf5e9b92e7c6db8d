"""The Redis side of the history archive (``archive/``): what the mover copies and
removes, the checkpoints it verifies, and what ``archive.verify`` compares. The archive
package knows no key and sends no Redis command: it calls these.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import redis

from store import keys

_REMOVE = (Path(__file__).with_name("lua") / "remove.lua").read_text()
_SCRIPTS: dict[int, tuple[redis.Redis, object]] = {}


def _remove_script(r: redis.Redis):
    found = _SCRIPTS.get(id(r))
    if found is None or found[0] is not r:
        found = _SCRIPTS[id(r)] = (r, r.register_script(_REMOVE))
    return found[1]


# ---------------------------------------------------------------- flags, checkpoints


def archive_in_use(r: redis.Redis, symbols) -> bool:
    """Has any of ``symbols`` moved anything to the archive (its ``archived`` flag)?"""
    symbols = list(symbols)
    if not symbols:
        return False
    with r.pipeline(transaction=False) as pipe:  # one key per symbol: one slot each
        for s in symbols:
            pipe.exists(keys.archived(s))
        return any(pipe.execute())


def read_checkpoint(r: redis.Redis, symbol: str) -> str | bytes | None:
    return r.get(keys.checkpoint(symbol))


def write_checkpoint(r: redis.Redis, symbol: str, body: bytes) -> None:
    r.set(keys.checkpoint(symbol), body)


# ---------------------------------------------------------------- what the mover copies


def final_orders_due(r: redis.Redis, symbol: str, cutoff_ms: int,
                     batch: int) -> list[tuple[str, dict, list[str]]]:
    """(id, hash ({} if gone), fills) of the oldest final orders last changed before
    ``cutoff_ms``, at most ``batch``."""
    ids = r.zrangebyscore(keys.final_orders(symbol), "-inf", cutoff_ms, start=0, num=batch)
    if not ids:
        return []
    with r.pipeline(transaction=False) as pipe:
        for oid in ids:
            pipe.hgetall(keys.order(oid))
            pipe.lrange(keys.order_fills(oid), 0, -1)
        replies = pipe.execute()
    return list(zip(ids, replies[0::2], replies[1::2], strict=True))


def oldest_trades(r: redis.Redis, symbol: str, count: int) -> list[tuple[int, str]]:
    """(sequence, Trade JSON) of the oldest trades in Redis."""
    return [(keys.sequence_of(eid), f["t"])
            for eid, f in r.xrange(keys.trades(symbol), count=count)]


def oldest_journal(r: redis.Redis, symbol: str, upto: int,
                   count: int) -> list[tuple[int, dict]]:
    """(sequence, entry fields) of the oldest journal entries at or below ``upto``."""
    return [(keys.sequence_of(eid), f)
            for eid, f in r.xrange(keys.journal(symbol), max=keys.stream_id(upto), count=count)]


def remove_moved(r: redis.Redis, symbol: str, token: str, orders, trades_below: int | None,
                 journal_below: int | None) -> tuple[int, int]:
    """Remove what the archive committed, fenced by the archiver lease (remove.lua).

    ``orders``: (id, updatedAt copied, account); the trades and journal entries below the
    given sequences are trimmed (None: none). Returns (removed, left because changed)."""
    script_keys = [keys.archiver(symbol), keys.final_orders(symbol), keys.trades(symbol),
                   keys.journal(symbol), keys.archived(symbol)]
    args = [token, keys.stream_id(trades_below) if trades_below else "",
            keys.stream_id(journal_below) if journal_below else ""]
    for oid, upd, account in orders:
        script_keys += [keys.order(oid), keys.order_fills(oid),
                        keys.account_orders(account, symbol), keys.account_open(account, symbol)]
        args += [oid, upd]
    removed, changed = _remove_script(r)(keys=script_keys, args=args)
    return int(removed), int(changed)


# ---------------------------------------------------------------- reads over both


def hot_trades(r: redis.Redis, symbol: str, seqs: list[int]) -> dict[int, dict]:
    """The trades of ``seqs`` still in Redis's stream, by sequence."""
    stream = keys.trades(symbol)
    with r.pipeline(transaction=False) as pipe:
        for s in seqs:
            pipe.xrange(stream, min=keys.stream_id(s), max=keys.stream_id(s))
        return {s: orjson.loads(e[0][1]["t"])
                for s, e in zip(seqs, pipe.execute(), strict=True) if e}


def order_and_fills(r: redis.Redis, order_id: str) -> tuple[dict | None, list[int]]:
    """The order's hash (None: not in Redis, or no order id) and its fill sequences."""
    try:
        key = keys.order(order_id)
    except keys.NotAnOrderId:
        return None, []
    with r.pipeline(transaction=False) as pipe:
        pipe.hgetall(key)
        pipe.lrange(keys.order_fills(order_id), 0, -1)
        h, seqs = pipe.execute()
    return (h or None), [int(s) for s in seqs]


# ---------------------------------------------------------------- archive.verify


def order_states(r: redis.Redis, symbol: str, accounts: dict[str, str],
                 chunk: int = 1000) -> dict:
    """order id -> (hash or None, fills, in open index, in account index, in final index),
    each order's keys read at one instant (one MULTI/EXEC per chunk, all on the symbol's
    slot). ``accounts``: order id -> account."""
    out = {}
    ids = list(accounts)
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        with r.pipeline(transaction=True) as pipe:
            for oid in part:
                account = accounts[oid]
                pipe.hgetall(keys.order(oid))
                pipe.lrange(keys.order_fills(oid), 0, -1)
                pipe.zscore(keys.account_open(account, symbol), oid)
                pipe.zscore(keys.account_orders(account, symbol), oid)
                pipe.zscore(keys.final_orders(symbol), oid)
            replies = pipe.execute()
        for i, oid in enumerate(part):
            h, fills, open_score, listed, final = replies[5 * i: 5 * i + 5]
            out[oid] = (h or None, fills, open_score is not None, listed is not None,
                        final is not None)
    return out


def all_trades(r: redis.Redis, symbol: str) -> dict[int, dict]:
    return {keys.sequence_of(eid): orjson.loads(f["t"])
            for eid, f in r.xrange(keys.trades(symbol))}


def applied(r: redis.Redis, symbol: str) -> int:
    return int(r.get(keys.applied(symbol)) or 0)


def last_trade(r: redis.Redis, symbol: str) -> tuple[int, str | None]:
    """(trade sequence, last price as stored)."""
    trade_seq, last = r.mget(keys.trade_seq(symbol), keys.last_price(symbol))
    return int(trade_seq or 0), last


def resting_set(r: redis.Redis, symbol: str) -> dict[str, int]:
    return {oid: int(s) for oid, s in r.zrange(keys.resting(symbol), 0, -1, withscores=True)}


def level_members(r: redis.Redis, symbol: str, side: str) -> list[tuple[str, int]]:
    """(member, score) of one side of the book, as stored."""
    return [(m, int(s)) for m, s in r.zrange(keys.book(symbol, side), 0, -1, withscores=True)]


def queue_final(r: redis.Redis, symbol: str, updated: dict[str, int],
                chunk: int = 1000) -> None:
    """Put final orders (id -> updatedAt ms) in the archive's queue (the ``final`` index)."""
    items = list(updated.items())
    for start in range(0, len(items), chunk):
        r.zadd(keys.final_orders(symbol), dict(items[start:start + chunk]))


def is_archived(r: redis.Redis, symbol: str) -> bool:
    return bool(r.exists(keys.archived(symbol)))
