"""The WebSocket ticker and candles channels on real processes (redis-server, worker,
gunicorn): they end equal to REST, coalesced to at most 4 frames a second; and the feed's
closed-candle frame against a real Redis."""

from __future__ import annotations

import threading
import time

import orjson
import pytest
import websocket

from app import create_app
from app.market_feed import MarketFeed
from settings import Settings
from store import keys
from tests.support import RedisServer, free_port, start_gunicorn, start_worker, stop, wait_until
from tests.support import http_json as support_http_json

pytestmark = pytest.mark.slow
BTC = "BTC-USD"


def test_ticker_and_candles_follow_trades_coalesced_and_end_equal_to_rest(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    web = worker = ws = None
    try:
        r = server.client()
        worker = start_worker(server.url, tmp_path / "worker.log")
        wait_until(lambda: r.exists(keys.heartbeat(BTC)), timeout=60, what="worker")
        port = free_port()
        web = start_gunicorn(server.url, port, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1",
                             GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")

        def http_json(method, path, body=None):
            return support_http_json(port, method, path, body)

        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=10)
        for bad in ({"op": "subscribe", "channel": "candles", "symbol": BTC},
                    {"op": "subscribe", "channel": "ticker", "symbol": BTC, "interval": "1m"},
                    {"op": "subscribe", "channel": "candles", "symbol": BTC, "interval": "2m"}):
            ws.send(orjson.dumps(bad).decode())
            reply = orjson.loads(ws.recv())
            assert reply["event"] == "error" and reply["code"] == "BAD_FRAME", reply
            assert "interval" in reply["message"]
        ws.send(orjson.dumps({"op": "subscribe", "channel": "ticker", "symbol": BTC}).decode())
        assert orjson.loads(ws.recv()) == {"event": "subscribed", "channel": "ticker",
                                           "symbol": BTC}
        first = orjson.loads(ws.recv())  # the current ticker at once
        assert first["event"] == "ticker" and first["trades24h"] == 0
        ws.send(orjson.dumps({"op": "subscribe", "channel": "candles", "symbol": BTC,
                              "interval": "1m"}).decode())
        assert orjson.loads(ws.recv())["interval"] == "1m"  # no candle yet: nothing more

        frames, done = [], threading.Event()

        def read():
            while not done.is_set():
                try:
                    frames.append((time.monotonic(), orjson.loads(ws.recv())))
                except websocket.WebSocketTimeoutException:
                    continue
                except Exception:
                    return

        ws.settimeout(0.5)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        started = time.monotonic()
        for i in range(40):  # a resting ask, then a buy that takes it: one trade each
            price = f"{100 + i % 5:.2f}"
            assert http_json("POST", "/api/orders", {"symbol": BTC, "side": "SELL",
                                                     "price": price, "quantity": "0.5"})[0] == 202
            assert http_json("POST", "/api/orders?wait=true", {
                "symbol": BTC, "side": "BUY", "price": price, "quantity": "0.5"})[0] == 201
        elapsed = time.monotonic() - started
        _, ticker = http_json("GET", f"/api/ticker?symbol={BTC}")
        assert ticker["trades24h"] == 40
        _, rest_candles = http_json("GET", f"/api/candles?symbol={BTC}&interval=1m")

        def caught_up():
            tickers = [f for _, f in frames if f["event"] == "ticker"]
            candles = [f for _, f in frames if f["event"] == "candles"]
            return (tickers and tickers[-1]["trades24h"] == 40 and candles
                    and candles[-1]["candle"] == rest_candles["candles"][-1])

        wait_until(caught_up, timeout=10, what="ticker and candles caught up")
        done.set()
        reader.join(2)
        tickers = [f for _, f in frames if f["event"] == "ticker"]
        candles = [f for _, f in frames if f["event"] == "candles"]
        assert {k: v for k, v in tickers[-1].items() if k != "event"} == ticker
        assert candles[-1] == {"event": "candles", "symbol": BTC, "interval": "1m",
                               "closed": False, "candle": rest_candles["candles"][-1]}
        # Coalesced: far fewer frames than trades, at most 4 a second (a little slack for
        # the first and the last).
        span = max(t for t, _ in frames) - started
        assert len(tickers) < 40 and len(tickers) <= span * 4 + 2, (len(tickers), elapsed)
        assert len([c for c in candles if not c["closed"]]) <= span * 4 + 2
        trades = [f["trades24h"] for f in tickers]
        assert trades == sorted(trades)  # in order, never backwards
        ws.settimeout(10)
        for channel, extra in (("ticker", {}), ("candles", {"interval": "1m"})):
            ws.send(orjson.dumps({"op": "unsubscribe", "channel": channel, "symbol": BTC,
                                  **extra}).decode())
            while (reply := orjson.loads(ws.recv()))["event"] != "unsubscribed":
                assert reply["event"] in ("ticker", "candles")  # already on its way
            assert reply == {"event": "unsubscribed", "channel": channel, "symbol": BTC,
                             **extra}
        assert http_json("POST", "/api/orders", {"symbol": BTC, "side": "SELL",
                                                 "price": "100.00", "quantity": "0.5"})[0] == 202
        assert http_json("POST", "/api/orders?wait=true", {
            "symbol": BTC, "side": "BUY", "price": "100.00", "quantity": "0.5"})[0] == 201
        time.sleep(0.6)  # past two feed rounds: anything still sent would now be here
        ws.send('{"op":"ping"}')
        assert orjson.loads(ws.recv()) == {"event": "pong"}  # and nothing before it
    finally:
        if ws is not None:
            ws.close()
        stop(web)
        stop(worker)
        server.stop()


class Collect:
    """Stands in for a connection: keeps what the feed queues for it."""

    def __init__(self):
        self.batches = []

    def on_market(self, batch):
        self.batches.append(batch)


def test_a_new_bucket_sends_the_closed_candle_once_then_the_new_one(redis_url, r):
    app = create_app(Settings(redis_url=redis_url, rate_limits="off"))
    feed = MarketFeed(app)
    try:
        sub = Collect()
        feed.add(BTC, sub)
        key = keys.candles(BTC, "1m")
        r.zadd(key, {"60000:100:100:100:100:1:100:1": 60000})
        feed._publish(BTC)
        r.zremrangebyscore(key, 60000, 60000)
        r.zadd(key, {"60000:100:120:100:120:3:340:2": 60000,
                     "120000:90:90:90:90:1:90:1": 120000})
        feed._publish(BTC)
        feed._publish(BTC)  # nothing changed: no candle frame
        first, second, third = ([orjson.loads(f) for f in b.candles.get("1m", [])]
                                for b in sub.batches)
        assert [(f["closed"], f["candle"]["time"]) for f in first] == [(False, 60000)]
        assert [(f["closed"], f["candle"]["time"], f["candle"]["close"]) for f in second] == [
            (True, 60000, 1.2), (False, 120000, 0.9)]
        assert third == []
        assert all(b.ticker is not None for b in sub.batches)
    finally:
        feed.stop()
        from app import events

        events.stop_all()
