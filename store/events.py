"""The one event maker: every order, trade, accepted and commit payload, and the messages
on a symbol's events channel (``keys.events_channel(S)``, sharded pub/sub).

Two message shapes travel on the channel, and this module is the only code that writes
or reads either:

| name     | who sends it           | bytes on the channel                                   |
|----------|------------------------|--------------------------------------------------------|
| COMMIT   | the worker's commit    | one JSON object ``{"type": "commit", ...}`` (below)    |
| ACCEPTED | accept.lua, per order  | ``A<sequence>|<timestamp>|`` + the PENDING order JSON  |

ACCEPTED is framed because the sequence and the timestamp are assigned inside the accept
script: Python builds the whole order JSON (without ``sequence``, ``timestamp``,
``updatedAt``), Lua prepends the two numbers it assigned and the fixed delimiters, and
never builds or edits JSON. ``parse`` turns either into the event dict the hub hands
its listeners (``app.events.Batch.events``):

  commit:   {"type": "commit", "symbol", "sequence", "prevSequence", "timestamp",
             "changes": [{"side", "price", "quantity", "orders"}], "trades": [Trade],
             "orders": [Order], "checksum"?}
  accepted: {"type": "accepted", "symbol", "orders": [Order]}  (one PENDING order)
"""

from __future__ import annotations

import select
import time

import orjson
import redis

from engine.types import LevelChanged, Order, OrderUpdated, TradeExecuted
from schemas.checksum import checksum_of_book
from schemas.markets import Market
from schemas.orders import order_json, trade_json
from store import keys

ACCEPTED_MARK = b"A"
DELIMITER = b"|"


# ---------------------------------------------------------------- orders and trades


def order_from_hash(h: dict[str, str], market: Market) -> dict:
    """A stored order hash (store.codec's fields) as the contract's Order."""
    return order_json(
        market,
        id=h["id"], account_id=h["acct"], side=h["side"], order_type=h["otype"],
        time_in_force=h["tif"], post_only=h["post"] == "1",
        price=int(h["price"]) if h["price"] else None, quantity=int(h["qty"]),
        filled=int(h["filled"]), notional=int(h["notional"]), status=h["status"],
        reason=h["reason"], sequence=int(h["seq"]), timestamp=int(h["ts"]),
        updated_at=int(h["upd"]), client_order_id=h["coid"],
        self_trade_prevention=h["stp"], stop_price=_int_or_none(h.get("stop")),
        expire_time=_int_or_none(h.get("exp")), replaces_order_id=h.get("rep"),
    )


def order_from_engine(o: Order, market: Market, status, reason, filled, notional,
                      updated_at, quantity) -> dict:
    """An engine order in the state an ``OrderUpdated`` gives it, as the contract's Order."""
    return order_json(
        market,
        id=o.id, account_id=o.account_id, side=o.side.value, order_type=o.order_type.value,
        time_in_force=o.time_in_force.value, post_only=o.post_only, price=o.price,
        quantity=quantity, filled=filled, notional=notional, status=status.value,
        reason=reason.value if reason else None, sequence=o.sequence, timestamp=o.timestamp,
        updated_at=updated_at, client_order_id=o.client_order_id,
        self_trade_prevention=o.self_trade_prevention.value, stop_price=o.stop_price,
        expire_time=o.expire_time, replaces_order_id=o.replaces_order_id,
    )


def pending_order(market: Market, order_id: str, account: str, request: dict) -> dict:
    """A new order as accepted, without ``sequence``/``timestamp``/``updatedAt``: the accept
    script assigns them (``accepted_order`` adds them)."""
    o = order_json(
        market, id=order_id, account_id=account, side=request["side"].value,
        order_type=request["order_type"].value, time_in_force=request["time_in_force"].value,
        post_only=request["post_only"], price=request["price"], quantity=request["quantity"],
        filled=0, notional=0, status="PENDING", reason=None, sequence=0, timestamp=0,
        updated_at=0, client_order_id=request["client_order_id"],
        self_trade_prevention=request["self_trade_prevention"].value,
        stop_price=request.get("stop_price"), expire_time=request.get("expire_time"),
        replaces_order_id=request.get("replaces_order_id"),
    )
    for late in ("sequence", "timestamp", "updatedAt"):
        del o[late]
    return o


def accepted_order(pending: dict, sequence: int, timestamp: int) -> dict:
    """The pending order with what the accept script assigned (in place, and returned)."""
    pending.update(sequence=sequence, timestamp=timestamp, updatedAt=timestamp)
    return pending


def trade(market: Market, e: TradeExecuted) -> dict:
    return trade_json(
        market, sequence=e.sequence, price=e.price, quantity=e.quantity,
        maker_order_id=e.maker_order_id, taker_order_id=e.taker_order_id,
        taker_side=e.taker_side.value, timestamp=e.timestamp)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


# ---------------------------------------------------------------- a commit


class Rendered:
    """One batch's engine events as payloads: ``orders`` (every OrderUpdated, in order),
    ``trades`` ((TradeExecuted, Trade JSON) pairs), ``levels`` (the last LevelChanged of
    each touched level, first-touch order), ``last`` (order id -> its last OrderUpdated)."""

    __slots__ = ("orders", "trades", "levels", "last")

    def __init__(self, market: Market, events):
        self.orders, self.trades, self.last = [], [], {}
        levels: dict[tuple, LevelChanged] = {}
        for e in events:
            kind = type(e)
            if kind is OrderUpdated:
                self.orders.append(order_from_engine(
                    e.order, market, e.status, e.reason, e.filled, e.notional, e.updated_at,
                    e.quantity))
                self.last[e.order.id] = e
            elif kind is TradeExecuted:
                self.trades.append((e, trade(market, e)))
            else:
                levels.pop((e.side, e.price), None)  # keep first-touch order, last value
                levels[(e.side, e.price)] = e
        self.levels = list(levels.values())


def commit_message(market: Market, rendered: Rendered, sequence: int, prev_sequence: int,
                   timestamp: int, book=None) -> dict:
    """The COMMIT message of one batch. ``book``: the engine book after the batch; a commit
    that changed levels carries its ``checksum`` (schemas.checksum)."""
    message = {
        "type": "commit", "symbol": market.symbol, "sequence": sequence,
        "prevSequence": prev_sequence, "timestamp": timestamp,
        "changes": [{"side": lv.side.value, "price": market.price(lv.price),
                     "quantity": market.quantity(lv.quantity), "orders": lv.orders}
                    for lv in rendered.levels],
        "trades": [t for _, t in rendered.trades],
        "orders": rendered.orders,
    }
    if rendered.levels and book is not None:
        message["checksum"] = checksum_of_book(market, book)
    return message


# ---------------------------------------------------------------- on the channel


def encode_commit(message: dict) -> bytes:
    return orjson.dumps(message)


def encode_pending(pending: dict) -> bytes:
    """What accept.lua receives to frame as ACCEPTED (see the module's table)."""
    return orjson.dumps(pending)


def parse(data: bytes | str) -> dict:
    """A message from the events channel as its event dict; ValueError if it is neither
    shape."""
    if isinstance(data, str):
        data = data.encode()
    if data[:1] == ACCEPTED_MARK:
        sequence, timestamp, body = data[1:].split(DELIMITER, 2)
        order = orjson.loads(body)
        if not isinstance(order, dict):
            raise ValueError("accepted: not an order object")
        accepted_order(order, int(sequence), int(timestamp))
        return {"type": "accepted", "symbol": order.get("symbol"), "orders": [order]}
    event = orjson.loads(data)
    if not isinstance(event, dict):
        raise ValueError("not an object")
    return event


# ---------------------------------------------------------------- the subscriber side


def subscribe(client, symbols, confirm_seconds: float = 5.0):
    """A pub/sub connection of ``client`` (store.connect.events_client) with an SSUBSCRIBE
    on each symbol's channel, confirmed by Redis; returns (client, pubsub). Read it with
    ``pubsub.get_message`` and ``parse`` (and ``symbol_of``) what arrives as type
    ``smessage``. On a Redis Cluster each channel is subscribed on its slot's node."""
    pubsub = client.pubsub()
    if isinstance(client, redis.RedisCluster):
        pubsub = _ShardedPubSub(pubsub)
    waiting = set()
    for symbol in symbols:  # one channel per command: each its own slot
        channel = keys.events_channel(symbol)
        pubsub.ssubscribe(channel)
        waiting.add(channel.encode())
    deadline = time.monotonic() + confirm_seconds
    while waiting and time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg["type"] == "ssubscribe":
            waiting.discard(msg["channel"])
    if waiting:
        pubsub.close()
        client.close()
        raise redis.exceptions.TimeoutError("no ssubscribe confirmation")
    return client, pubsub


MESSAGE_TYPE = "smessage"  # what redis-py calls a sharded pub/sub message


class _ShardedPubSub:
    """redis-py's ClusterPubSub (one connection per node holding a subscribed slot) with
    the single-connection interface the hub reads: ``get_message(timeout)`` waits on
    every node's socket at once (``get_sharded_message`` would wait on each in turn)."""

    def __init__(self, pubsub):
        self.pubsub = pubsub

    def ssubscribe(self, *channels) -> None:
        self.pubsub.ssubscribe(*channels)

    def get_message(self, timeout: float = 0.0):
        msg = self.pubsub.get_sharded_message(timeout=0)
        if msg is not None or not timeout:
            return msg
        socks = [p.connection._sock for p in self.pubsub.node_pubsub_mapping.values()
                 if p.connection is not None and p.connection._sock is not None]
        if socks:
            select.select(socks, [], [], timeout)
        else:
            time.sleep(timeout)
        return self.pubsub.get_sharded_message(timeout=0)

    def ping(self) -> None:
        for p in list(self.pubsub.node_pubsub_mapping.values()):
            p.ping()

    def close(self) -> None:
        for p in list(self.pubsub.node_pubsub_mapping.values()):
            p.close()
        self.pubsub.close()


def symbol_of(channel: bytes | str) -> str:
    """The symbol of an events channel (``keys.events_channel``)."""
    if isinstance(channel, bytes):
        channel = channel.decode()
    return keys.symbol_of_channel(channel)
