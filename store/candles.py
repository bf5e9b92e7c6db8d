"""Candles (1m 5m 15m 1h 4h 1d) and the 24 h ticker, built from the trades.

The matching worker maintains them in the same commit as the trades that make them
(commit.lua, "candles" section), so they always agree with the trades stream.

Storage: one sorted set per symbol and interval, ``keys.candles(S, I)``; score = the
bucket start (ms, UTC), member ``"start:open:high:low:close:volume:quote:trades"`` in
integers (prices in ticks, volume in lots, quote volume in ticks x lots, which can pass
2^53, so Lua never does arithmetic on it: the worker writes whole members).

The worker keeps the newest candle of each interval in memory (``CandleCache``), tied to
the engine book it was loaded with: the commit is fenced by the lease and the cursor, so
while that book is current nobody else can have changed the stored candles, and a book
that is dropped (a commit that did not land) takes its cache with it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import redis

from schemas.market_data import INTERVALS
from schemas.markets import Market
from store import codec, keys

DAY_MS = 86_400_000
MINUTE_MS = INTERVALS["1m"]


def bucket_start(timestamp_ms: int, interval_ms: int) -> int:
    """The start of the bucket holding ``timestamp_ms`` (multiples of the interval since
    the epoch: UTC midnight for 1d, 00/04/08/.. UTC for 4h)."""
    return timestamp_ms - timestamp_ms % interval_ms


def encode(c: list[int]) -> str:
    return ":".join(map(str, c))


def decode(member: str) -> list[int]:
    return [int(x) for x in member.split(":")]


def merge(candle: list[int] | None, start: int, price: int, lots: int) -> list[int]:
    """``candle`` (or a new one at ``start``) with one more trade; a new list."""
    if candle is None:
        return [start, price, price, price, price, lots, price * lots, 1]
    s, o, h, lo, _, v, q, n = candle
    return [s, o, max(h, price), min(lo, price), price, v + lots, q + price * lots, n + 1]


class CandleCache:
    """The newest stored candle of each interval, for one symbol and one engine book."""

    def __init__(self, r: redis.Redis, symbol: str, book):
        self.r, self.symbol, self.book = r, symbol, book
        self.latest: dict[str, list[int] | None] = {}
        self.keys = {name: keys.candles(symbol, name) for name in INTERVALS}
        with r.pipeline(transaction=False) as pipe:
            for name in INTERVALS:
                pipe.zrevrange(keys.candles(symbol, name), 0, 0)
            for name, found in zip(INTERVALS, pipe.execute(), strict=True):
                self.latest[name] = decode(found[0]) if found else None

    def _stored(self, name: str, start: int) -> list[int] | None:
        found = self.r.zrangebyscore(keys.candles(self.symbol, name), start, start)
        return decode(found[0]) if found else None

    def update(self, trades) -> list[list[str]]:
        """Rows ``[key, start, member]`` for the candles ``trades`` change, oldest first
        per interval; ``trades``: (timestamp ms, price ticks, lots) in trade order.
        The cache moves on at once: a commit that fails drops the book, and the cache
        with it (``SymbolMatcher``)."""
        # One pass over the trades makes the batch's minute pieces; every interval is then
        # built from those (a batch rarely spans more than one or two minutes).
        pieces = list(_pieces(trades).values())
        rows = []
        for name, length in INTERVALS.items():
            touched: dict[int, list[int]] = {}
            latest = self.latest[name]
            for piece in pieces:
                start = bucket_start(piece[0], length)
                current = touched.get(start)
                if current is None:
                    if latest is not None and start == latest[0]:
                        current = latest
                    elif latest is not None and start < latest[0]:
                        current = self._stored(name, start)  # the clock went back: rare
                    # else: a new bucket, nothing is stored past the newest
                current = touched[start] = _join(current, start, piece)
                if latest is None or start >= latest[0]:
                    latest = current
            # Trade indexes mean nothing past this batch: keep the candle only.
            self.latest[name] = latest[:8] if latest is not None else None
            key = self.keys[name]
            rows += [[key, str(start), encode(c[:8])] for start, c in sorted(touched.items())]
        return rows


def _pieces(trades) -> dict[int, list[int]]:
    """Minute candles of ``trades`` with the trade index of their last trade appended
    (``[start, o, h, l, c, v, q, n, last]``), in the order their first trade came."""
    out: dict[int, list[int]] = {}
    for i, (ts, price, lots) in enumerate(trades):
        start = ts - ts % MINUTE_MS
        c = out.get(start)
        if c is None:
            out[start] = [start, price, price, price, price, lots, price * lots, 1, i]
        else:
            if price > c[2]:
                c[2] = price
            if price < c[3]:
                c[3] = price
            c[4], c[8] = price, i
            c[5] += lots
            c[6] += price * lots
            c[7] += 1
    return out


def _join(candle: list[int] | None, start: int, piece: list[int]) -> list[int]:
    """``candle`` (stored trades, or a new bucket) with a later minute ``piece``; pieces
    come in the order of their first trade, so the open is right; the close is the one
    of the piece with the latest last trade (index 8)."""
    if candle is None:
        return [start, *piece[1:]]
    s, o, h, lo, c, v, q, n = candle[:8]
    last = candle[8] if len(candle) > 8 else -1
    close, last = (piece[4], piece[8]) if piece[8] > last else (c, last)
    return [s, o, max(h, piece[2]), min(lo, piece[3]), close, v + piece[5], q + piece[6],
            n + piece[7], last]


def for_book(cache: CandleCache | None, r: redis.Redis, symbol: str, book) -> CandleCache:
    """The cache for ``book``: the same one while the book is the same object."""
    if cache is None or cache.book is not book:
        cache = CandleCache(r, symbol, book)
    return cache


def from_trades(trades, interval_ms: int) -> dict[int, list[int]]:
    """Every candle of one interval that ``trades`` (timestamp, price, lots) make."""
    out: dict[int, list[int]] = {}
    for ts, price, lots in trades:
        start = bucket_start(ts, interval_ms)
        out[start] = merge(out.get(start), start, price, lots)
    return out


# ------------------------------------------------------------------ the read side


def candle_json(market: Market, c: list[int]) -> dict:
    s, o, h, lo, cl, v, q, n = c
    return {"time": s, "open": market.price(o), "high": market.price(h),
            "low": market.price(lo), "close": market.price(cl), "volume": market.quantity(v),
            "quoteVolume": quote(market, q), "trades": n}


def quote(market: Market, ticks_lots: int) -> float:
    """Quote volume (ticks x lots) in quote currency, the nearest float."""
    step = Fraction(market.tick_size) * Fraction(market.lot_size)
    return ticks_lots * step.numerator / step.denominator


def candles(r: redis.Redis, market: Market, interval: str, start: int | None = None,
            end: int | None = None, limit: int = 500) -> list[dict]:
    """Candles oldest first. With ``start``: the first ``limit`` from there; otherwise the
    ``limit`` newest up to ``end`` (the usual chart request)."""
    key = keys.candles(market.symbol, interval)
    low = "-inf" if start is None else start
    high = "+inf" if end is None else end
    if start is not None:
        members = r.zrangebyscore(key, low, high, start=0, num=limit)
    else:
        members = r.zrevrangebyscore(key, high, low, start=0, num=limit)[::-1]
    return [candle_json(market, decode(m)) for m in members]


def window_start(now_ms: int) -> int:
    """The first minute bucket of the rolling 24 h (the one /api/markets counts from)."""
    return bucket_start(now_ms - DAY_MS, MINUTE_MS)


def ticker(market: Market, minutes: list[str], last: str | None, bid: list, ask: list) -> dict:
    """The 24 h ticker from the 1m candles of the window (stored members, oldest first),
    the last trade price (ticks) and the best bid/ask book members."""
    price = market.price
    out = {"symbol": market.symbol,
           "lastPrice": price(int(last)) if last else None,
           "bestBid": price(codec.decode_level(bid[0])[0]) if bid else None,
           "bestAsk": price(codec.decode_level(ask[0])[0]) if ask else None,
           "open24h": None, "high24h": None, "low24h": None, "volume24h": 0.0,
           "quoteVolume24h": 0.0, "priceChange": None, "priceChangePercent": None,
           "trades24h": 0}
    if not minutes:
        return out
    rows = [decode(m) for m in minutes]
    open_, close = rows[0][1], rows[-1][4]
    out.update({
        "open24h": price(open_), "high24h": price(max(c[2] for c in rows)),
        "low24h": price(min(c[3] for c in rows)),
        "volume24h": market.quantity(sum(c[5] for c in rows)),
        "quoteVolume24h": quote(market, sum(c[6] for c in rows)),
        "priceChange": price(close - open_),
        "priceChangePercent": float((Decimal(close - open_) * 100 / Decimal(open_)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_EVEN)),
        "trades24h": sum(c[7] for c in rows),
    })
    return out


def newest(r: redis.Redis, symbol: str, interval: str, count: int = 1) -> list[str]:
    """The ``count`` newest candle members of one interval, newest first."""
    return r.zrevrange(keys.candles(symbol, interval), 0, count - 1)


def newest_of_each(r: redis.Redis, symbol: str, count: int = 2) -> list[list[str]]:
    """``newest`` of every interval (``INTERVALS`` order), in one round trip."""
    with r.pipeline(transaction=False) as pipe:
        for name in INTERVALS:
            pipe.zrevrange(keys.candles(symbol, name), 0, count - 1)
        return pipe.execute()


def tickers(r: redis.Redis, markets: list[Market], now_ms: int) -> list[dict]:
    """The ticker of each market: one pipelined round trip for all of them."""
    since = window_start(now_ms)
    with r.pipeline(transaction=False) as pipe:
        for m in markets:
            pipe.zrangebyscore(keys.candles(m.symbol, "1m"), since, "+inf")
            pipe.get(keys.last_price(m.symbol))
            pipe.zrevrange(keys.book(m.symbol, "BUY"), 0, 0)
            pipe.zrange(keys.book(m.symbol, "SELL"), 0, 0)
        replies = pipe.execute()
    return [ticker(m, *replies[4 * i: 4 * i + 4]) for i, m in enumerate(markets)]
