"""/ws when the store fails under it: a subscribe that cannot read the store gets an
error naming the channel and leaves the client unsubscribed; a trade hole that cannot
be backfilled closes the socket (1013) instead of skipping trades. Real gunicorn,
real redis-server, real websocket clients."""

from __future__ import annotations

import pytest
import websocket

from tests.e2e.test_ws import BTC, ETH, Client, commit, trade
from tests.support import RedisServer, free_port, start_gunicorn, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def node(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    port = free_port()
    proc = start_gunicorn(server.url, port, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1",
                          GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    yield server, f"ws://127.0.0.1:{port}/ws"
    stop(proc)
    server.stop()


def test_subscribe_during_a_redis_outage_gets_an_error_and_no_subscription(node):
    server, url = node
    c = Client(url)
    c.subscribe("trade", symbol=ETH)  # the hub is up: this one is live throughout
    server.kill()
    server.process = None
    for channel in ("trade", "orderbook"):
        reply = c.call({"op": "subscribe", "channel": channel, "symbol": BTC})
        assert reply["event"] == "error", reply
        assert (reply["code"], reply["channel"], reply["symbol"]) == ("UNAVAILABLE", channel, BTC)
    server.start()  # same port, empty
    r = server.client()
    # BTC was refused, so its trade never arrives; ETH's does, live or (if the hub had
    # not reconnected yet) from the stream when it resyncs.
    commit(r, BTC, 1, 0, trades=[trade(BTC, 1)])
    commit(r, ETH, 1, 0, trades=[trade(ETH, 1)])
    c.ws.settimeout(15)
    got = c.recv()
    assert (got["event"], got["symbol"], got["sequence"]) == ("trade", ETH, 1), got
    c.nothing_pending()
    assert c.subscribe("trade", symbol=BTC)["symbol"] == BTC  # store back: subscribes again
    c.close()


def test_a_trade_hole_that_cannot_be_backfilled_closes_1013(node):
    server, url = node
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "admin", "on", ">pw", "~*", "&*", "+@all")
    admin = server.client(username="admin", password="pw")
    c = Client(url)
    c.subscribe("trade", symbol=BTC)
    commit(admin, BTC, 1, 0, trades=[trade(BTC, 1)])
    assert c.recv()["sequence"] == 1
    # The web's connections (user default) may no longer read the trades stream.
    admin.execute_command("ACL", "SETUSER", "default", "-xrange")
    commit(admin, BTC, 2, 1, trades=[trade(BTC, 3)])  # trade 2 went missing: a hole
    c.ws.settimeout(15)
    opcode, data = c.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE  # never trade 3 without trade 2
    assert int.from_bytes(data[:2], "big") == 1013
    assert b"backfill" in data[2:]
    c.close()
    admin.close()
