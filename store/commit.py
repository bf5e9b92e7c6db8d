"""The write side: one script call per batch of applied commands, fenced.

Everything a batch changes — order states, resting set, book levels, trades, fills,
the applied cursor, the heartbeat, and the event message — goes out in one call of
commit.lua (atomic, and on one slot: every key is the symbol's, declared in KEYS), so
Redis is always before or after a batch, never in between. The script first checks the
symbol's lease token and that the cursor is where this writer left it: if another worker
took the lease or moved the cursor, nothing is written (``Fenced``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import redis

from engine.types import FINAL_STATUSES, OrderUpdated, Side, Status
from schemas.markets import Market
from store import codec, keys
from store import events as events_mod

RESTING = (Status.OPEN, Status.PARTIAL, Status.UNTRIGGERED)  # in the resting set
_LUA = Path(__file__).with_name("lua") / "commit.lua"
VOLUME_BUCKET_MS = 60_000


class Fenced(Exception):
    """Another writer owns this symbol, or the cursor is not where this writer thinks."""


def commit(r: redis.Redis, market: Market, token: str, prev_applied: int, new_applied: int,
           events: list, now_ms: int, book=None, candles=None) -> dict:
    """Write one batch atomically; returns the published COMMIT message. Raises ``Fenced``.

    ``book``: the engine book after the batch (the message's ``checksum``, store.events).
    ``candles``: the symbol's ``store.candles.CandleCache``; the candles the trades change
    are written in the same script call."""
    symbol = market.symbol
    rendered = events_mod.Rendered(market, events)
    trades = rendered.trades
    message = events_mod.commit_message(market, rendered, new_applied, prev_applied, now_ms,
                                        book)
    script_keys = [
        keys.owner(symbol), keys.applied(symbol), keys.resting(symbol),
        keys.book(symbol, "BUY"), keys.book(symbol, "SELL"), keys.trades(symbol),
        keys.volume(symbol), keys.trade_seq(symbol), keys.last_price(symbol),
        keys.heartbeat(symbol), keys.final_orders(symbol), keys.events_channel(symbol),
    ]
    index = _KeyIndex(script_keys)
    candle_rows = (candles.update([(e.timestamp, e.price, e.quantity) for e, _ in trades])
                   if candles is not None and trades else [])
    batch = orjson.dumps({
        "o": _order_rows(symbol, rendered.last, index),
        "t": _trade_rows(trades, index),
        "l": [[4 if lv.side is Side.BUY else 5, str(lv.price),
               codec.encode_level(lv.price, lv.quantity, lv.orders) if lv.quantity else ""]
              for lv in rendered.levels],
        # No trades: leave "ts"/"lp" out (JSON null would be cjson.null, truthy in Lua).
        **({"ts": str(trades[-1][0].sequence), "lp": str(trades[-1][0].price)}
           if trades else {}),
        "c": [[index(key), start, member] for key, start, member in candle_rows],
    })
    run_commit(r, script_keys, [token, str(prev_applied), batch, str(new_applied), now_ms,
                                events_mod.encode_commit(message)])
    return message


class _KeyIndex:
    """Appends each key the batch names to the script's KEYS once; returns its 1-based
    index (commit.lua reads the rows' keys as ``KEYS[i]``)."""

    def __init__(self, script_keys: list[str]):
        self.script_keys = script_keys
        self.seen: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        i = self.seen.get(key)
        if i is None:
            self.script_keys.append(key)
            i = self.seen[key] = len(self.script_keys)
        return i


_SCRIPT = _LUA.read_text()
_SHA = hashlib.sha1(_SCRIPT.encode()).hexdigest()


def run_commit(r: redis.Redis, script_keys: list[str], args: list) -> None:
    """EVALSHA commit.lua: one round trip, one slot. The script is atomic by itself and
    checks the fence first (a WATCH on the lease would also trip on our own renewals)."""
    for attempt in (1, 2):
        try:
            r.evalsha(_SHA, len(script_keys), *script_keys, *args)
            return
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            r.script_load(_SCRIPT)  # first use, or Redis restarted and lost its script cache
        except redis.ResponseError as exc:
            if "FENCED" in str(exc):
                raise Fenced(f"{script_keys[0]}: {exc}") from None
            raise


def _order_rows(symbol: str, last: dict[str, OrderUpdated], index: _KeyIndex) -> list[list]:
    rows = []
    for order_id, e in last.items():
        o = e.order
        state = "r" if e.status in RESTING else "f" if e.status in FINAL_STATUSES else ""
        rows.append([index(keys.order(order_id)), order_id, e.status.value,
                     e.reason.value if e.reason else "", str(e.filled), str(e.notional),
                     str(e.updated_at), str(o.sequence), state,
                     index(keys.account_open(o.account_id, symbol)),
                     str(e.quantity), str(o.rank)])
    return rows


def _trade_rows(trades: list, index: _KeyIndex) -> list[list]:
    return [[keys.stream_id(e.sequence), orjson.dumps(t).decode(),
             index(keys.order_fills(e.maker_order_id)), index(keys.order_fills(e.taker_order_id)),
             str(e.sequence), str(e.timestamp // VOLUME_BUCKET_MS), str(e.quantity)]
            for e, t in trades]
