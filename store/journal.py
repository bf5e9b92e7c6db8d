"""The accept side: one atomic Redis step per command (Lua), then a wake-up task.

``accept`` assigns the per-symbol sequence, appends the command to the symbol's
journal, stores the PENDING order with its per-(account, symbol) indexes and
clientOrderId, and publishes the ACCEPTED message (store/events.py), all in one script
on the symbol's slot. The caller sends the matching task only
when the script says the symbol was asleep (one task per burst, not per order).
"""

from __future__ import annotations

import secrets
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import redis

from store import codec, events, keys

_LUA = Path(__file__).with_name("lua")
# Per client object, not id(r): an id can be reused by a later client.
_SCRIPTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_SCRIPT_NAMES = ("accept", "cancel", "cancel_all", "expire_due")


def _scripts(r: redis.Redis):
    # Registered once per client: EVALSHA, reloading on NOSCRIPT after a Redis restart.
    found = _SCRIPTS.get(r)
    if found is None:
        found = _SCRIPTS[r] = tuple(r.register_script((_LUA / f"{name}.lua").read_text())
                                    for name in _SCRIPT_NAMES)
    return found


def new_order_id(symbol: str) -> str:
    """A fresh order id naming its symbol (``keys.new_order_id``)."""
    return keys.new_order_id(symbol, secrets.token_urlsafe(12))


@dataclass
class Accepted:
    """Outcome of one accept: ``created`` (with the order), ``duplicate``, ``limited``."""

    outcome: str
    order: dict | None = None  # the PENDING order JSON when created
    order_id: str | None = None
    sequence: int = 0
    woke: bool = False


def _accept_call(script, client, market, account, request, request_id, max_open):
    symbol = market.symbol
    order_id = new_order_id(symbol)
    pending = events.pending_order(market, order_id, account, request)
    script(
        keys=[keys.seq(symbol), keys.journal(symbol), keys.order(order_id),
              keys.account_orders(account, symbol), keys.account_open(account, symbol),
              keys.account_client_ids(account, symbol), keys.wake(symbol),
              keys.account_counter(account, symbol), keys.gtd(symbol),
              keys.events_channel(symbol)],
        args=[order_id, request["client_order_id"] or "", max_open,
              events.encode_pending(pending),
              *codec.order_values(account, request, request_id)],
        client=client,
    )
    return order_id, pending


def _accepted(reply, order_id, pending) -> Accepted:
    code = int(reply[0])
    if code == 0:
        return Accepted("duplicate", order_id=reply[1])
    if code == -1:
        return Accepted("limited")
    seq, ts = int(reply[1]), int(reply[2])
    return Accepted("created", order=events.accepted_order(pending, seq, ts),
                    order_id=order_id, sequence=seq, woke=bool(int(reply[3])))


def accept_many(r: redis.Redis, items: list[tuple], max_open: int = 0) -> list[Accepted]:
    """Accept ``(market, account, request, request_id)`` items in order, one round trip.
    ``max_open``: the cap on the account's open orders per symbol (0: none). redis-py's
    cluster pipelines refuse scripts: on a Redis Cluster one call per order, in order."""
    if isinstance(r, redis.RedisCluster):
        return [accept(r, *item, max_open=max_open) for item in items]
    accept_script = _scripts(r)[0]
    pipe = r.pipeline(transaction=False)
    pending = [_accept_call(accept_script, pipe, *item, max_open) for item in items]
    replies = pipe.execute()
    return [_accepted(reply, oid, p) for reply, (oid, p) in zip(replies, pending, strict=True)]


def accept(r: redis.Redis, market, account: str, request: dict, request_id: str,
           max_open: int = 0) -> Accepted:
    """Accept one order: one EVALSHA (a pipeline would add a SCRIPT EXISTS round trip)."""
    accept_script = _scripts(r)[0]
    reply_box = []

    def run(keys, args, client):
        reply_box.append(accept_script(keys=keys, args=args, client=client))

    order_id, pending = _accept_call(run, r, market, account, request, request_id, max_open)
    return _accepted(reply_box[0], order_id, pending)


@dataclass
class CancelRequested:
    outcome: str  # "queued" | "not_found" | "final" | "not_lower" (reduce)
    symbol: str | None = None
    sequence: int = 0
    woke: bool = False
    status: str | None = None
    quantity: int = 0  # "not_lower": the order's quantity (lots)


def request_cancel(r: redis.Redis, order_id: str, account: str | None,
                   request_id: str, reduce_to: int | None = None) -> CancelRequested:
    """Journal a cancel for ``order_id`` (``account``: the owner it must have, or None), or
    with ``reduce_to`` (lots) a reduce to that total quantity."""
    symbol = keys.order_symbol(order_id)  # the id names its symbol: no lookup
    if symbol is None:
        return CancelRequested("not_found")
    cancel = _scripts(r)[1]
    reply = cancel(
        keys=[keys.seq(symbol), keys.journal(symbol), keys.order(order_id), keys.wake(symbol)],
        args=[order_id, account or "", request_id,
              "cancel" if reduce_to is None else "reduce",
              "" if reduce_to is None else str(reduce_to)],
    )
    code = int(reply[0])
    if code == -404:
        return CancelRequested("not_found")
    if code == -409:
        return CancelRequested("final", symbol=symbol, status=reply[1])
    if code == -400:
        return CancelRequested("not_lower", symbol=symbol, quantity=int(reply[1]))
    return CancelRequested("queued", symbol=symbol, sequence=int(reply[1]),
                           woke=bool(int(reply[3])))


@dataclass
class CancelAllRequested:
    symbol: str
    sequence: int
    timestamp: int
    woke: bool
    open_ids: list[str]  # the account's orders on the symbol open when it was journaled


def request_cancel_all(r: redis.Redis, symbol: str, account: str,
                       request_id: str) -> CancelAllRequested:
    """Journal one cancel-all of ``account`` on ``symbol``."""
    reply = _scripts(r)[2](
        keys=[keys.seq(symbol), keys.journal(symbol), keys.account_open(account, symbol),
              keys.wake(symbol)],
        args=[account, request_id],
    )
    return CancelAllRequested(symbol, int(reply[0]), int(reply[1]), bool(int(reply[2])),
                              list(reply[3:]))


def journal_due_expiries(r: redis.Redis, symbol: str, limit: int = 500) -> int:
    """Journal an expire command for each GTD order of ``symbol`` past its expireTime (by
    Redis's clock); returns the last sequence journaled, 0 if none."""
    # The candidates are read first (their hashes must be the script's KEYS): the earliest
    # due by our clock plus a margin for a Redis clock ahead of ours; the script decides
    # by Redis's. Nothing due: no script call at all.
    margin_ms = 2000
    due = r.zrangebyscore(keys.gtd(symbol), "-inf", int(time.time() * 1000) + margin_ms,
                          start=0, num=limit)
    if not due:
        return 0
    count, seq = _scripts(r)[3](
        keys=[keys.gtd(symbol), keys.seq(symbol), keys.journal(symbol),
              *(keys.order(order_id) for order_id in due)],
        args=due,
    )
    return int(seq) if int(count) else 0


def read_after(r: redis.Redis, symbol: str, after: int, count: int | None = None):
    """``(command, request id)`` of journal entries with sequence > ``after``, in order."""
    entries = r.xrange(keys.journal(symbol), min=keys.stream_id(after + 1), count=count)
    return [(codec.command_from_entry(keys.sequence_of(eid), f), f.get("rid", ""))
            for eid, f in entries]


def wait_after_any(r: redis.Redis, cursors: dict[str, int], block_ms: int) -> bool:
    """Block up to ``block_ms`` until any symbol's journal has an entry past its cursor."""
    if block_ms <= 0 or not cursors:
        return False
    if len(cursors) > 1 and isinstance(r, redis.RedisCluster):
        return _poll_after_any(r, cursors, block_ms)
    streams = {keys.journal(sym): keys.stream_id(after) for sym, after in cursors.items()}
    return bool(r.xread(streams, count=1, block=block_ms))


POLL_SECONDS = 0.002


def _poll_after_any(r, cursors: dict[str, int], block_ms: int) -> bool:
    """A Redis Cluster refuses an XREAD over several slots: look at the symbols'
    sequences instead (one pipelined round trip per node) every 2 ms for the linger."""
    deadline = time.monotonic() + block_ms / 1000
    symbols = list(cursors)
    while True:
        with r.pipeline(transaction=False) as pipe:
            for sym in symbols:
                pipe.get(keys.seq(sym))
            seqs = pipe.execute()
        if any(int(seq or 0) > cursors[sym] for sym, seq in zip(symbols, seqs, strict=True)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def last_sequence(r: redis.Redis, symbol: str) -> int:
    return int(r.get(keys.seq(symbol)) or 0)
