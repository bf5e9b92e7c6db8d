"""The WebSocket ``ticker`` and ``candles`` channels: one feed per web process.

The feed listens to the event hub for every symbol (``app.events.ALL``) and only notes
which symbols traded; it never blocks the hub. Its own thread wakes every
``INTERVAL`` (250 ms), and for each symbol that traded and has subscribers reads the
ticker and the two newest candles of each interval from Redis (one pipelined round trip,
``store.candles``), builds each frame once and queues it to the subscribed connections
(``Connection.on_market``): at most 4 frames a second per symbol (ticker) and per
symbol and interval (candles), whatever the trade rate.

A candle frame goes out when the stored candle changed since the last one sent; when a
trade opened a new bucket, the candle it closed goes out once more, final, with
``"closed": true``, before the new one.
"""

from __future__ import annotations

import logging
import os
import threading

import orjson
import redis

from app.cached import per_process
from app.events import ALL, get_hub
from schemas.market_data import INTERVALS
from schemas.markets import get_market
from store import candles

log = logging.getLogger(__name__)

INTERVAL = 0.25  # seconds: at most 4 frames a second per symbol (and interval)
_EXTENSION = "market_feed"
_lock = threading.Lock()


class MarketBatch:
    """Market-data frames for one symbol, queued to a connection like a hub batch."""

    __slots__ = ("symbol", "ticker", "candles", "events", "commits", "memo")

    def __init__(self, symbol: str, ticker: bytes | None, candle_frames: dict):
        self.symbol = symbol
        self.ticker = ticker  # the frame, or None
        self.candles = candle_frames  # interval -> [frames]
        self.events, self.commits, self.memo = (), (), {}


def ticker_frame(ticker: dict) -> bytes:
    return orjson.dumps({"event": "ticker", **ticker})


def candle_frame(market, interval: str, member: str, closed: bool) -> bytes:
    return orjson.dumps({"event": "candles", "symbol": market.symbol, "interval": interval,
                         "closed": closed,
                         "candle": candles.candle_json(market, candles.decode(member))})


class MarketFeed:
    def __init__(self, app):
        self.app = app
        self.settings = app.config["SETTINGS"]
        self.pid = os.getpid()
        self._subs: dict[str, set] = {}  # symbol -> connections (ticker or candles)
        self._dirty: set[str] = set()
        self._sent: dict[tuple[str, str], str] = {}  # (symbol, interval) -> member sent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._r = None
        self._thread = threading.Thread(target=self._run, name="market-feed", daemon=True)
        self._thread.start()
        get_hub(app).add_listener(ALL, self)

    @property
    def redis(self):
        if self._r is None:
            from app.redis_client import get_redis

            with self.app.app_context():
                self._r = get_redis()
        return self._r

    # -- subscriptions (connection threads) -------------------------------------------
    def add(self, symbol: str, conn) -> None:
        with self._lock:
            self._subs.setdefault(symbol, set()).add(conn)

    def remove(self, symbol: str, conn) -> None:
        with self._lock:
            group = self._subs.get(symbol)
            if group is not None:
                group.discard(conn)
                if not group:
                    del self._subs[symbol]

    def current(self, channel: str, symbol: str, interval: str | None) -> bytes | None:
        """The frame a new subscriber gets at once: the ticker, or the current candle."""
        market = get_market(self.settings, symbol)
        if channel == "ticker":
            return ticker_frame(candles.tickers(self.redis, [market], _now_ms())[0])
        newest = candles.newest(self.redis, symbol, interval)
        return candle_frame(market, interval, newest[0], False) if newest else None

    # -- hub listener (hub thread: note and return) -------------------------------------
    def on_batches(self, batches) -> bool:
        traded = [b.symbol for b in batches if any(c.get("trades") for c in b.commits)]
        if traded:
            with self._lock:  # held for a set update only: the hub never waits on Redis here
                self._dirty.update(traded)
        return False

    def wake(self) -> None:
        pass

    def on_resync(self) -> None:
        with self._lock:
            self._dirty.update(self._subs)  # trades may have been missed: re-read all

    # -- the feed thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            if not self._dirty:
                continue
            with self._lock:
                dirty = [s for s in self._dirty if s in self._subs]
                self._dirty.clear()
            for symbol in dirty:
                try:
                    self._publish(symbol)
                except redis.RedisError as err:
                    log.warning("market feed: %s unavailable (%s); retried", symbol, err)
                    with self._lock:
                        self._dirty.add(symbol)
                except Exception:
                    log.exception("market feed failed for %s", symbol)

    def _publish(self, symbol: str) -> None:
        market = get_market(self.settings, symbol)
        newest = candles.newest_of_each(self.redis, symbol, 2)
        ticker = ticker_frame(candles.tickers(self.redis, [market], _now_ms())[0])
        frames: dict[str, list[bytes]] = {}
        for name, members in zip(INTERVALS, newest, strict=True):
            if not members:
                continue
            sent = self._sent.get((symbol, name))
            if members[0] == sent:
                continue
            out = []
            if len(members) > 1 and sent is not None and sent.split(":", 1)[0] == \
                    members[1].split(":", 1)[0]:
                out.append(candle_frame(market, name, members[1], True))  # the closed one
            out.append(candle_frame(market, name, members[0], False))
            frames[name] = out
            self._sent[(symbol, name)] = members[0]
        batch = MarketBatch(symbol, ticker, frames)
        with self._lock:
            conns = list(self._subs.get(symbol, ()))
        for conn in conns:
            conn.on_market(batch)

    def stop(self) -> None:
        self._stop.set()


def _now_ms() -> int:
    from store.read import now_ms

    return now_ms()


def get_feed(app) -> MarketFeed:
    """This process's feed (made on first use, after fork)."""
    return per_process(app, _EXTENSION, _lock, lambda: MarketFeed(app))
