"""The read side: what REST and the WebSocket snapshot show. Never writes.

Multi-key reads that must agree with each other (a book and its sequence) run in one
MULTI/EXEC, so they see one instant of Redis.
"""

from __future__ import annotations

import base64
import time

import orjson
import redis

from schemas.markets import Market
from store import codec, keys

OPEN_STATUSES = {"PENDING", "UNTRIGGERED", "OPEN", "PARTIAL"}


class BadCursor(ValueError):
    pass


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- cursors


def encode_cursor(*parts) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise BadCursor("unparseable cursor") from exc
    if not isinstance(parts, list) or len(parts) != arity:
        raise BadCursor("unparseable cursor")
    return parts


# ---------------------------------------------------------------- book


def _levels(market: Market, members: list[str]) -> list[dict]:
    out = []
    for member in members:
        price, qty, count = member.split(":")
        out.append({"price": market.price(int(price)), "quantity": market.quantity(int(qty)),
                    "orders": int(count)})
    return out


def _book_levels(r: redis.Redis, symbol: str, levels: int):
    with r.pipeline(transaction=True) as pipe:
        pipe.zrevrange(keys.book(symbol, "BUY"), 0, levels - 1)
        pipe.zrange(keys.book(symbol, "SELL"), 0, levels - 1)
        pipe.get(keys.applied(symbol))
        bids, asks, applied = pipe.execute()
    return bids, asks, int(applied or 0)


def orderbook(r: redis.Redis, market: Market, levels: int = 50) -> dict:
    """Aggregated book, best first, with the journal sequence it reflects."""
    bids_raw, asks_raw, applied = _book_levels(r, market.symbol, levels)
    bids, asks = _levels(market, bids_raw), _levels(market, asks_raw)
    best_bid = bids[0]["price"] if bids else None
    best_ask = asks[0]["price"] if asks else None
    spread = mid = None
    if bids and asks:
        bid_ticks, ask_ticks = int(bids_raw[0].split(":")[0]), int(asks_raw[0].split(":")[0])
        spread = market.price(ask_ticks - bid_ticks)
        mid = market.average_price(bid_ticks + ask_ticks, 2)
    return {"symbol": market.symbol, "sequence": applied, "timestamp": now_ms(),
            "bids": bids, "asks": asks, "bestBid": best_bid, "bestAsk": best_ask,
            "spread": spread, "midPrice": mid}


def depth(r: redis.Redis, market: Market, levels: int = 50) -> dict:
    bids_raw, asks_raw, applied = _book_levels(r, market.symbol, levels)

    def cumulative(members):
        total, out = 0, []
        for member in members:
            price, qty, _ = member.split(":")
            total += int(qty)
            out.append({"price": market.price(int(price)),
                        "quantity": market.quantity(int(qty)),
                        "total": market.quantity(total)})
        return out

    return {"symbol": market.symbol, "sequence": applied,
            "bids": cumulative(bids_raw), "asks": cumulative(asks_raw)}


# ---------------------------------------------------------------- orders


def order_hash(r: redis.Redis, order_id: str) -> dict | None:
    h = r.hgetall(keys.order(order_id))
    return h or None


def fills(r: redis.Redis, symbol: str, order_id: str) -> list[dict]:
    seqs = r.lrange(keys.order_fills(order_id), 0, -1)
    if not seqs:
        return []
    stream = keys.trades(symbol)
    with r.pipeline(transaction=False) as pipe:
        for s in seqs:
            pipe.xrange(stream, min=keys.stream_id(int(s)), max=keys.stream_id(int(s)))
        return [orjson.loads(entries[0][1]["t"]) for entries in pipe.execute() if entries]


def list_orders(r: redis.Redis, markets: dict[str, Market], account: str, *, symbol=None,
                statuses=None, side=None, limit=100, cursor=None) -> tuple[list[dict], str | None]:
    """An account's orders, newest first, filtered, paged by an opaque cursor.

    Open-only queries walk the account's open index; others its full index, a page
    at a time, so a request never touches more than the pages it needs.
    """
    only_open = statuses is not None and statuses <= OPEN_STATUSES
    index = keys.account_open(account) if only_open else keys.account_orders(account)
    max_score, after_member = "+inf", None
    if cursor:
        score, after_member = decode_cursor(cursor, 2)
        if type(score) is not int or not isinstance(after_member, str):  # bool is an int
            raise BadCursor("unparseable cursor")
        max_score = score
    out: list[dict] = []
    offset, chunk = 0, max(2 * limit, 200)
    last = None
    while len(out) <= limit:
        page = r.zrevrangebyscore(index, max_score, "-inf", start=offset, num=chunk,
                                  withscores=True)
        if not page:
            break
        offset += len(page)
        candidates = []
        for member, score in page:
            score = int(score)
            # Equal scores come in reverse lexical order: skip what the cursor has seen.
            if after_member is not None and score == max_score and member >= after_member:
                continue
            candidates.append((member, score))
        with r.pipeline(transaction=False) as pipe:
            for member, _ in candidates:
                pipe.hgetall(keys.order(member))
            hashes = pipe.execute()
        for (member, score), h in zip(candidates, hashes, strict=True):
            if not h:
                continue
            if symbol and h["sym"] != symbol:
                continue
            if statuses and h["status"] not in statuses:
                continue
            if side and h["side"] != side:
                continue
            if len(out) == limit:
                return out, encode_cursor(*last)
            out.append(codec.order_json_from_hash(h, markets[h["sym"]]))
            last = (score, member)
        if len(page) < chunk:
            break
    return out, None


# ---------------------------------------------------------------- trades


def trades(r: redis.Redis, market: Market, limit: int = 100, cursor: str | None = None):
    """Trades newest first; the cursor is the last trade sequence already returned."""
    max_id = "+"
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        if type(before) is not int or before < 1:  # bool is an int too
            raise BadCursor("unparseable cursor")
        if before == 1:
            return [], None
        max_id = keys.stream_id(before - 1)
    entries = r.xrevrange(keys.trades(market.symbol), max=max_id, min="-", count=limit + 1)
    out = [orjson.loads(f["t"]) for _, f in entries[:limit]]
    more = len(entries) > limit
    return out, encode_cursor(out[-1]["sequence"]) if more else None


def latest_trades(r: redis.Redis, market: Market, limit: int = 20) -> list[dict]:
    entries = r.xrevrange(keys.trades(market.symbol), count=limit)
    return [orjson.loads(f["t"]) for _, f in entries]


# ---------------------------------------------------------------- markets, health


def market_summaries(r: redis.Redis, markets: list[Market]) -> list[dict]:
    with r.pipeline(transaction=False) as pipe:
        for m in markets:
            pipe.get(keys.last_price(m.symbol))
            pipe.zrevrange(keys.book(m.symbol, "BUY"), 0, 0)
            pipe.zrange(keys.book(m.symbol, "SELL"), 0, 0)
            pipe.hgetall(keys.volume(m.symbol))
        replies = pipe.execute()
    since = (now_ms() - 86_400_000) // 60_000
    out = []
    for i, m in enumerate(markets):
        last, bid, ask, volume = replies[4 * i: 4 * i + 4]
        lots = sum(int(v) for minute, v in volume.items() if int(minute) >= since)
        out.append({
            "symbol": m.symbol, "tickSize": float(m.tick_size), "lotSize": float(m.lot_size),
            "lastPrice": m.price(int(last)) if last else None,
            "bestBid": m.price(int(bid[0].split(":")[0])) if bid else None,
            "bestAsk": m.price(int(ask[0].split(":")[0])) if ask else None,
            "volume24h": m.quantity(lots),
        })
    return out


def lag(r: redis.Redis, symbols) -> dict[str, dict]:
    """Per symbol: accepted sequence, applied cursor, lag and matcher heartbeat age (ms)."""
    with r.pipeline(transaction=False) as pipe:
        for s in symbols:
            pipe.get(keys.seq(s))
            pipe.get(keys.applied(s))
            pipe.get(keys.heartbeat(s))
        replies = pipe.execute()
    now = now_ms()
    out = {}
    for i, s in enumerate(symbols):
        accepted, applied, beat = (int(x or 0) for x in replies[3 * i: 3 * i + 3])
        out[s] = {"accepted": accepted, "applied": applied, "lag": accepted - applied,
                  "heartbeatAgeMs": now - beat if beat else None}
    return out


def health(r: redis.Redis, settings) -> dict:
    report = {"status": "ok", "readOnly": settings.read_only, "redis": {"ok": True},
              "symbols": {}}
    try:
        started = time.perf_counter()
        r.ping()
        report["redis"]["latencyMs"] = round((time.perf_counter() - started) * 1000, 3)
        symbols = lag(r, settings.symbols)
    except redis.RedisError as exc:
        report["status"] = "unavailable"
        report["redis"] = {"ok": False, "error": str(exc)}
        return report
    stale_ms = settings.heartbeat_stale_seconds * 1000
    for s, info in symbols.items():
        problems = []
        if info["heartbeatAgeMs"] is None or info["heartbeatAgeMs"] > stale_ms:
            problems.append("matcher heartbeat missing or stale")
        if info["lag"] > settings.max_healthy_lag:
            problems.append("queue lag too large")
        info["ok"] = not problems
        if problems:
            info["problems"] = problems
            report["status"] = "unavailable"
        report["symbols"][s] = info
    return report
