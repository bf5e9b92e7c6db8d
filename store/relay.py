"""What the WebSocket relay (app.ws) reads: book snapshots, the trade sequence, trades to
backfill. Read only; the relay never names a key or sends a Redis command itself."""

from __future__ import annotations

import orjson
import redis

from schemas.markets import Market
from store import keys, read


def book_snapshot(r: redis.Redis, market: Market, levels: int) -> dict:
    """The aggregated book with the commit sequence it reflects (as REST shows it)."""
    return read.orderbook(r, market, levels)


def trade_sequence(r: redis.Redis, symbol: str) -> int:
    """The last trade sequence of ``symbol`` (0: none yet)."""
    return int(r.get(keys.trade_seq(symbol)) or 0)


def trades_after(r: redis.Redis, symbol: str, after: int, upto: int | None) -> list[dict]:
    """The trades with sequence in (``after``, ``upto``] (``upto`` None: all), in order,
    as the contract's trade JSON."""
    entries = r.xrange(keys.trades(symbol), min=keys.stream_id(after + 1),
                       max=keys.stream_id(upto) if upto is not None else "+")
    out = []
    for _, fields in entries:
        payload = fields.get("t") or fields.get(b"t")
        if payload:
            out.append(orjson.loads(payload))
    return out
