"""The write side: one MULTI/EXEC per batch of applied commands, fenced.

Everything a batch changes — order states, resting set, book levels, trades, fills,
the applied cursor, the heartbeat, and the event message — goes out in one
transaction, so Redis is always before or after a batch, never in between. The
transaction WATCHes the symbol's lease and cursor: if another worker took the lease
or moved the cursor, EXEC fails and nothing is written (``Fenced``).
"""

from __future__ import annotations

import orjson
import redis

from engine.types import FINAL_STATUSES, LevelChanged, OrderUpdated, Status, TradeExecuted
from schemas.markets import Market
from schemas.orders import trade_json
from store import codec, keys

RESTING = (Status.OPEN, Status.PARTIAL)
VOLUME_BUCKET_MS = 60_000


class Fenced(Exception):
    """Another writer owns this symbol, or the cursor is not where this writer thinks."""


def render(market: Market, events) -> tuple[list, list, list, dict]:
    """Events as contract JSON: (orders, trades, level changes, last update per order)."""
    orders, trades, last = [], [], {}
    levels: dict[tuple, LevelChanged] = {}
    for e in events:
        kind = type(e)
        if kind is OrderUpdated:
            orders.append(codec.order_json_from_engine(
                e.order, market, e.status, e.reason, e.filled, e.notional, e.updated_at))
            last[e.order.id] = e
        elif kind is TradeExecuted:
            trades.append((e, trade_json(
                market, sequence=e.sequence, price=e.price, quantity=e.quantity,
                maker_order_id=e.maker_order_id, taker_order_id=e.taker_order_id,
                taker_side=e.taker_side.value, timestamp=e.timestamp)))
        else:
            levels.pop((e.side, e.price), None)  # keep first-touch order, last value
            levels[(e.side, e.price)] = e
    return orders, trades, list(levels.values()), last


def commit(r: redis.Redis, market: Market, token: str, prev_applied: int, new_applied: int,
           events: list, now_ms: int) -> dict:
    """Write one batch atomically; returns the published message. Raises ``Fenced``."""
    symbol = market.symbol
    orders, trades, levels, last = render(market, events)
    message = {
        "type": "commit", "symbol": symbol, "sequence": new_applied,
        "prevSequence": prev_applied, "timestamp": now_ms,
        "changes": [{"side": lv.side.value, "price": market.price(lv.price),
                     "quantity": market.quantity(lv.quantity), "orders": lv.orders}
                    for lv in levels],
        "trades": [t for _, t in trades],
        "orders": orders,
    }
    with r.pipeline() as pipe:
        try:
            pipe.watch(keys.owner(symbol), keys.applied(symbol))
            owner, applied = pipe.mget(keys.owner(symbol), keys.applied(symbol))
            if owner != token:
                raise Fenced(f"{symbol}: lease held by another worker")
            if int(applied or 0) != prev_applied:
                raise Fenced(f"{symbol}: cursor at {applied}, expected {prev_applied}")
            pipe.multi()
            _write_orders(pipe, symbol, last)
            _write_trades(pipe, symbol, trades)
            _write_levels(pipe, symbol, levels)
            pipe.set(keys.applied(symbol), new_applied)
            pipe.set(keys.heartbeat(symbol), now_ms)
            pipe.publish(keys.events_channel(symbol), orjson.dumps(message))
            pipe.execute()
        except redis.WatchError:
            raise Fenced(f"{symbol}: lease or cursor changed during the commit") from None
    return message


def _write_orders(pipe, symbol: str, last: dict[str, OrderUpdated]) -> None:
    resting = keys.resting(symbol)
    for order_id, e in last.items():
        o = e.order
        pipe.hset(keys.order(order_id), mapping={
            "status": e.status.value, "reason": e.reason.value if e.reason else "",
            "filled": e.filled, "notional": e.notional, "upd": e.updated_at,
        })
        if e.status in RESTING:
            pipe.zadd(resting, {order_id: o.sequence})
        elif e.status in FINAL_STATUSES:
            pipe.zrem(resting, order_id)
            pipe.zrem(keys.account_open(o.account_id), order_id)


def _write_trades(pipe, symbol: str, trades: list) -> None:
    if not trades:
        return
    stream, volume = keys.trades(symbol), keys.volume(symbol)
    for e, t in trades:
        pipe.xadd(stream, {"t": orjson.dumps(t)}, id=keys.stream_id(e.sequence))
        pipe.rpush(keys.order_fills(e.maker_order_id), e.sequence)
        pipe.rpush(keys.order_fills(e.taker_order_id), e.sequence)
        pipe.hincrby(volume, e.timestamp // VOLUME_BUCKET_MS, e.quantity)
    last_trade = trades[-1][0]
    pipe.set(keys.trade_seq(symbol), last_trade.sequence)
    pipe.set(keys.last_price(symbol), last_trade.price)


def _write_levels(pipe, symbol: str, levels: list[LevelChanged]) -> None:
    for lv in levels:
        key = keys.book(symbol, lv.side.value)
        pipe.zremrangebyscore(key, lv.price, lv.price)
        if lv.quantity:
            pipe.zadd(key, {f"{lv.price}:{lv.quantity}:{lv.orders}": lv.price})
