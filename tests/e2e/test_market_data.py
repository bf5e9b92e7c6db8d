"""Market data end to end (api.md section 10): server time, candles and the 24 h ticker
built by the real worker from the trades, equal to what /api/trades says."""

from __future__ import annotations

import random
import time
from decimal import Decimal

from store import keys
from store.verify import verify


def test_server_time(stack):
    before = int(time.time() * 1000)
    reply = stack.client.get("/api/time")
    after = int(time.time() * 1000)
    assert reply.status_code == 200
    assert set(reply.json) == {"serverTime"} and before <= reply.json["serverTime"] <= after
    bad = stack.client.get("/api/time?x=1")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "VALIDATION_ERROR"


INTERVALS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000,
             "4h": 14_400_000, "1d": 86_400_000}


def _all_trades(client, symbol) -> list[dict]:
    out, cursor = [], None
    while True:
        url = f"/api/trades?symbol={symbol}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url).json
        out += page["trades"]
        cursor = page["nextCursor"]
        if cursor is None:
            return out[::-1]  # oldest first


def _seed(stack, symbol, n=240, seed=7):
    """A crossing two-sided flow: about half the orders trade."""
    rnd = random.Random(seed)
    for _ in range(n):
        side = rnd.choice(("BUY", "SELL"))
        price = 100 + rnd.randint(-30, 30) / 100 + (0.1 if side == "BUY" else -0.1)
        reply = stack.client.post("/api/orders", json={
            "symbol": symbol, "side": side, "price": f"{price:.2f}",
            "quantity": f"{rnd.randint(1, 3000) / 1000:.3f}"})
        assert reply.status_code == 202, reply.json
    stack.drained(symbol)


def _expected_candles(trades, length) -> list[dict]:
    """What the trades say, in exact decimals (independent of store.candles)."""
    buckets: dict[int, dict] = {}
    for t in trades:
        start = t["timestamp"] // length * length
        price, qty = Decimal(str(t["price"])), Decimal(str(t["quantity"]))
        c = buckets.get(start)
        if c is None:
            c = buckets[start] = {"time": start, "open": price, "high": price, "low": price,
                                  "close": price, "volume": Decimal(0),
                                  "quoteVolume": Decimal(0), "trades": 0}
        c["high"], c["low"], c["close"] = max(c["high"], price), min(c["low"], price), price
        c["volume"] += qty
        c["quoteVolume"] += price * qty
        c["trades"] += 1
    return [{k: (float(v) if isinstance(v, Decimal) else v) for k, v in c.items()}
            for _, c in sorted(buckets.items())]


def test_candles_and_ticker_equal_what_the_trades_say(stack):
    symbol = stack.symbol()
    _seed(stack, symbol)
    trades = _all_trades(stack.client, symbol)
    assert len(trades) > 50
    for name, length in INTERVALS.items():
        reply = stack.client.get(f"/api/candles?symbol={symbol}&interval={name}&limit=1000")
        assert reply.status_code == 200
        assert reply.json == {"symbol": symbol, "interval": name,
                              "candles": _expected_candles(trades, length)}, name

    ticker = stack.client.get(f"/api/ticker?symbol={symbol}").json
    prices = [Decimal(str(t["price"])) for t in trades]
    first, last = prices[0], prices[-1]
    book = stack.client.get(f"/api/orderbook?symbol={symbol}&levels=1").json
    assert ticker == {
        "symbol": symbol, "lastPrice": float(last), "bestBid": book["bestBid"],
        "bestAsk": book["bestAsk"], "open24h": float(first), "high24h": float(max(prices)),
        "low24h": float(min(prices)),
        "volume24h": float(sum(Decimal(str(t["quantity"])) for t in trades)),
        "quoteVolume24h": float(sum(Decimal(str(t["price"])) * Decimal(str(t["quantity"]))
                                    for t in trades)),
        "priceChange": float(last - first),
        "priceChangePercent": float(((last - first) * 100 / first).quantize(Decimal("0.01"))),
        "trades24h": len(trades)}
    markets = {m["symbol"]: m for m in stack.client.get("/api/markets").json["markets"]}
    assert markets[symbol]["volume24h"] == ticker["volume24h"]  # the same minute buckets
    everyone = stack.client.get("/api/ticker").json["tickers"]
    assert [t for t in everyone if t["symbol"] == symbol] == [ticker]
    assert verify(stack.r, stack.settings, [symbol]) == []
    # verify recomputes them: a wrong candle or minute volume is named.
    key = keys.candles(symbol, "1h")
    (member,) = stack.r.zrange(key, 0, -1)
    start, *rest = member.split(":")
    stack.r.zadd(key, {f"{start}:{int(rest[0]) + 1}:" + ":".join(rest[1:]): int(start)})
    minute, lots = next(iter(stack.r.hgetall(keys.volume(symbol)).items()))
    stack.r.hset(keys.volume(symbol), minute, int(lots) + 1)
    diffs = verify(stack.r, stack.settings, [symbol])
    assert len(diffs) == 2 and "1h candles differ" in diffs[0] and "volume of minute" in diffs[1]


def test_candle_query_window_and_limit(stack):
    symbol = stack.symbol()
    empty = stack.client.get(f"/api/ticker?symbol={symbol}").json
    assert (empty["open24h"], empty["trades24h"], empty["volume24h"]) == (None, 0, 0.0)
    assert stack.client.get(f"/api/candles?symbol={symbol}&interval=1m").json["candles"] == []
    _seed(stack, symbol, n=60, seed=3)
    base = f"/api/candles?symbol={symbol}&interval=1m"
    every = stack.client.get(base).json["candles"]
    assert every
    newest = every[-1]
    assert stack.client.get(base + "&limit=1").json["candles"] == [newest]
    assert stack.client.get(base + f"&start={newest['time'] + 1}").json["candles"] == []
    assert stack.client.get(base + f"&end={every[0]['time'] - 1}").json["candles"] == []
    assert stack.client.get(base + f"&start={every[0]['time']}&limit=1").json["candles"] == \
        every[:1]
    bad_interval = stack.client.get(f"/api/candles?symbol={symbol}&interval=2m")
    assert bad_interval.status_code == 400 and "interval" in bad_interval.json["error"]["fields"]
    for bad, field in (("&limit=0", "limit"),
                       ("&limit=1001", "limit"), ("&start=5&end=4", "start"),
                       ("&start=x", "start"), ("&end=-1", "end")):
        reply = stack.client.get(base + bad)
        assert reply.status_code == 400, bad
        assert field in reply.json["error"]["fields"], (bad, reply.json)
    missing = stack.client.get(f"/api/candles?symbol={symbol}")
    assert missing.status_code == 400 and "interval" in missing.json["error"]["fields"]
    assert stack.client.get("/api/ticker?symbol=NOPE").status_code == 400
