"""The read side: what REST and the WebSocket snapshot show. Never writes.

Multi-key reads that must agree with each other (a book and its sequence) run in one
MULTI/EXEC, so they see one instant of Redis.
"""

from __future__ import annotations

import base64
import heapq
import time

import orjson
import redis

from schemas.markets import Market
from store import codec, events, keys

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
        price, qty, count = codec.decode_level(member)
        out.append({"price": market.price(price), "quantity": market.quantity(qty),
                    "orders": count})
    return out


def best_price(members: list[str]) -> int | None:
    """The price (ticks) of the first level member of a ZRANGE, or None (empty side)."""
    return codec.decode_level(members[0])[0] if members else None


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
        bid_ticks, ask_ticks = best_price(bids_raw), best_price(asks_raw)
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
            price, qty, _ = codec.decode_level(member)
            total += qty
            out.append({"price": market.price(price), "quantity": market.quantity(qty),
                        "total": market.quantity(total)})
        return out

    return {"symbol": market.symbol, "sequence": applied,
            "bids": cumulative(bids_raw), "asks": cumulative(asks_raw)}


# ---------------------------------------------------------------- orders


def order_hash(r: redis.Redis, order_id: str) -> dict | None:
    """The order's hash; None when unknown, or when ``order_id`` is no order id at all."""
    try:
        key = keys.order(order_id)
    except keys.NotAnOrderId:
        return None
    h = r.hgetall(key)
    return h or None


def order_fill_sequences(r: redis.Redis, order_id: str) -> list[int]:
    """The trade sequences the order took part in (its fills list), oldest first."""
    return [int(s) for s in r.lrange(keys.order_fills(order_id), 0, -1)]


def order_numbers(r: redis.Redis, order_ids: list[str]) -> list[int | None]:
    """Each order's acceptance number ``n`` (store/keys.py), None where the hash is gone."""
    with r.pipeline(transaction=False) as pipe:
        for order_id in order_ids:
            pipe.hget(keys.order(order_id), "n")
        return [int(n) if n else None for n in pipe.execute()]


def client_orders(r: redis.Redis, account: str, symbols, client_order_id: str) -> list[dict]:
    """The hashes of ``account``'s orders with this clientOrderId on ``symbols`` (unique per
    (account, symbol): at most one per symbol), in ``symbols`` order."""
    with r.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.hget(keys.account_client_ids(account, symbol), client_order_id)
        ids = [oid for oid in pipe.execute() if oid]
    if not ids:
        return []
    with r.pipeline(transaction=False) as pipe:
        for oid in ids:
            pipe.hgetall(keys.order(oid))
        return [h for h in pipe.execute() if h]


def fills(r: redis.Redis, symbol: str, order_id: str) -> list[dict]:
    seqs = r.lrange(keys.order_fills(order_id), 0, -1)
    if not seqs:
        return []
    stream = keys.trades(symbol)
    with r.pipeline(transaction=False) as pipe:
        for s in seqs:
            pipe.xrange(stream, min=keys.stream_id(int(s)), max=keys.stream_id(int(s)))
        return [orjson.loads(entries[0][1]["t"]) for entries in pipe.execute() if entries]


def _index_pages(r: redis.Redis, index: str, max_score, chunk: int, first_page):
    """One account index, newest first below ``max_score``, a page at a time (the first
    page already read, in one pipeline with the other indexes)."""
    page, offset = first_page, 0
    while page:
        offset += len(page)
        for member, score in page:
            yield int(score), member
        if len(page) < chunk:
            return
        page = r.zrevrangebyscore(index, max_score, "-inf", start=offset, num=chunk,
                                  withscores=True)


def _newest_first(r: redis.Redis, indexes: list[str], max_score, chunk: int):
    """``(n, id)`` of several account indexes merged newest first (k-way, lazily: each
    index is read a page at a time as the merge reaches it). Ties on n (two symbols in
    one ms) go by id, descending, like equal scores within one zset."""
    with r.pipeline(transaction=False) as pipe:
        for index in indexes:
            pipe.zrevrangebyscore(index, max_score, "-inf", start=0, num=chunk,
                                  withscores=True)
        firsts = pipe.execute()
    streams = [_index_pages(r, index, max_score, chunk, first)
               for index, first in zip(indexes, firsts, strict=True)]
    return heapq.merge(*streams, reverse=True)


def list_orders(r: redis.Redis, markets: dict[str, Market], account: str, *, symbol=None,
                statuses=None, side=None, limit=100, cursor=None) -> tuple[list[dict], str | None]:
    """An account's orders, newest first, filtered, paged by an opaque cursor.

    Open-only queries walk the account's open indexes, others its full ones: the
    symbol's, or every market's merged by ``(n, id)`` (store/keys.py). Indexes are read a
    page at a time, so a request never touches more than the pages it needs.
    """
    only_open = statuses is not None and statuses <= OPEN_STATUSES
    index = keys.account_open if only_open else keys.account_orders
    symbols = [symbol] if symbol else list(markets)
    max_score, after_member = "+inf", None
    if cursor:
        score, after_member = decode_cursor(cursor, 2)
        if type(score) is not int or not isinstance(after_member, str):  # bool is an int
            raise BadCursor("unparseable cursor")
        max_score = score
    chunk = max(2 * limit, 200)
    merged = _newest_first(r, [index(account, s) for s in symbols], max_score, chunk)
    out: list[dict] = []
    last = None
    while True:
        candidates = []
        for score, member in merged:
            # Equal scores come in reverse id order: skip what the cursor has seen.
            if after_member is not None and score == max_score and member >= after_member:
                continue
            candidates.append((member, score))
            if len(candidates) == chunk:
                break
        if not candidates:
            return out, None
        with r.pipeline(transaction=False) as pipe:
            for member, _ in candidates:
                pipe.hgetall(keys.order(member))
            hashes = pipe.execute()
        for (member, score), h in zip(candidates, hashes, strict=True):
            if not h:
                continue
            if statuses and h["status"] not in statuses:
                continue
            if side and h["side"] != side:
                continue
            if len(out) == limit:
                return out, encode_cursor(*last)
            out.append(events.order_from_hash(h, markets[h["sym"]]))
            last = (score, member)
        if len(candidates) < chunk:
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
            "bestBid": m.price(best_price(bid)) if bid else None,
            "bestAsk": m.price(best_price(ask)) if ask else None,
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


def matcher_states(r: redis.Redis, symbols) -> list[tuple[int, int, int, int, bool]]:
    """Per symbol, for /metrics: (accepted sequence, applied cursor, heartbeat ms or 0,
    trade sequence, lease held), in one pipelined round trip."""
    with r.pipeline(transaction=False) as pipe:
        for s in symbols:
            pipe.get(keys.seq(s))
            pipe.get(keys.applied(s))
            pipe.get(keys.heartbeat(s))
            pipe.get(keys.trade_seq(s))
            pipe.exists(keys.owner(s))
        replies = pipe.execute()
    return [(int(seq or 0), int(done or 0), int(beat or 0), int(tseq or 0), bool(owned))
            for seq, done, beat, tseq, owned in zip(*[iter(replies)] * 5, strict=True)]


def applied(r: redis.Redis, symbol: str) -> int:
    """The symbol's applied cursor: the last command sequence the matcher committed."""
    return int(r.get(keys.applied(symbol)) or 0)


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
