"""The write side: one MULTI/EXEC per batch of applied commands, fenced.

Everything a batch changes — order states, resting set, book levels, trades, fills,
the applied cursor, the heartbeat, and the event message — goes out in one
transaction (the commit.lua script inside MULTI/EXEC), so Redis is always before or
after a batch, never in between. The script first checks the symbol's lease token and
that the cursor is where this writer left it: if another worker took the lease or moved
the cursor, nothing is written (``Fenced``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import redis

from engine.types import (
    FINAL_STATUSES,
    LevelChanged,
    OrderUpdated,
    Side,
    Status,
    TradeExecuted,
)
from schemas.checksum import checksum_of_book
from schemas.markets import Market
from schemas.orders import trade_json
from store import codec, keys

RESTING = (Status.OPEN, Status.PARTIAL, Status.UNTRIGGERED)  # in the resting set
_LUA = Path(__file__).with_name("lua") / "commit.lua"
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
                e.order, market, e.status, e.reason, e.filled, e.notional, e.updated_at,
                e.quantity))
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
           events: list, now_ms: int, book=None, candles=None) -> dict:
    """Write one batch atomically; returns the published message. Raises ``Fenced``.

    ``book``: the engine book after the batch; a commit that changed levels carries its
    ``checksum`` (schemas.checksum) for the relay's orderbook messages. ``candles``: the
    symbol's ``store.candles.CandleCache``; the candles the trades change are written in
    the same transaction."""
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
    if levels and book is not None:
        message["checksum"] = checksum_of_book(market, book)
    batch = orjson.dumps({
        "o": _order_rows(last),
        "t": _trade_rows(trades),
        "l": [[4 if lv.side is Side.BUY else 5, str(lv.price),
               f"{lv.price}:{lv.quantity}:{lv.orders}" if lv.quantity else ""]
              for lv in levels],
        # No trades: leave "ts"/"lp" out (JSON null would be cjson.null, truthy in Lua).
        **({"ts": str(trades[-1][0].sequence), "lp": str(trades[-1][0].price)}
           if trades else {}),
        "c": candles.update([(e.timestamp, e.price, e.quantity) for e, _ in trades])
        if candles is not None and trades else [],
    })
    run_commit(r, [
        keys.owner(symbol), keys.applied(symbol), keys.resting(symbol),
        keys.book(symbol, "BUY"), keys.book(symbol, "SELL"), keys.trades(symbol),
        keys.volume(symbol), keys.trade_seq(symbol), keys.last_price(symbol),
        keys.heartbeat(symbol), keys.final_orders(symbol), keys.events_channel(symbol),
    ], [token, str(prev_applied), batch, str(new_applied), now_ms, orjson.dumps(message)])
    return message


_SCRIPT = _LUA.read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()


def run_commit(r: redis.Redis, script_keys: list[str], args: list) -> None:
    """MULTI, EVALSHA commit.lua, EXEC: one round trip. The fence is checked inside the
    script (a WATCH on the lease would also trip on our own lease renewals)."""
    for attempt in (1, 2):
        try:
            with r.pipeline(transaction=True) as pipe:
                pipe.evalsha(_SHA, len(script_keys), *script_keys, *args)
                pipe.execute()
            return
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            r.script_load(_SCRIPT)  # first use, or Redis restarted and lost its script cache
        except redis.ResponseError as exc:
            if "FENCED" in str(exc):
                raise Fenced(f"{script_keys[0]}: {exc}") from None
            raise


def _order_rows(last: dict[str, OrderUpdated]) -> list[list]:
    rows = []
    for order_id, e in last.items():
        o = e.order
        state = "r" if e.status in RESTING else "f" if e.status in FINAL_STATUSES else ""
        rows.append([keys.order(order_id), order_id, e.status.value,
                     e.reason.value if e.reason else "", str(e.filled), str(e.notional),
                     str(e.updated_at), str(o.sequence), state,
                     keys.account_open(o.account_id), str(e.quantity), str(o.rank)])
    return rows


def _trade_rows(trades: list) -> list[list]:
    return [[keys.stream_id(e.sequence), orjson.dumps(t).decode(),
             keys.order_fills(e.maker_order_id), keys.order_fills(e.taker_order_id),
             str(e.sequence), str(e.timestamp // VOLUME_BUCKET_MS), str(e.quantity)]
            for e, t in trades]
