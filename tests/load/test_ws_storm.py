"""A reconnect storm on one node (real gunicorn as the Procfile runs it, a real worker,
redis-server): ``STORM_CLIENTS`` (500) WebSocket clients from 4 processes connect and
subscribe to ``trade`` on BTC-USD and ETH-USD at the same moment; every one is acked,
then gets every trade of a 200 orders/s stream exactly once, in order."""

from __future__ import annotations

import os

import pytest

from bench.ws_bench import _post_flow
from localrun.node import Node
from localrun.ws_crowd import Storm, raise_fd_limit
from store import keys
from tests.support import wait_until

pytestmark = pytest.mark.slow

CLIENTS = int(os.environ.get("STORM_CLIENTS", "500"))
SYMBOLS = ("BTC-USD", "ETH-USD")
RATE, SECONDS = 200, float(os.environ.get("STORM_SECONDS", "3"))


def test_a_storm_of_subscribers_all_acked_then_every_trade_once_in_order(tmp_path):
    raise_fd_limit()
    node = Node(tmp_path)
    storm = Storm(node.port, CLIENTS, 4, SYMBOLS)
    try:
        acked, seconds = storm.connect()
        print(f"\n{CLIENTS} clients connected and subscribed at once: {acked} acked on both "
              f"symbols in {seconds:.2f} s")
        assert acked == CLIENTS
        sent, stop_at = {}, []
        _post_flow(node.port, RATE, SECONDS, sent, stop_at)
        assert sent.get("errors", 0) == 0
        r = node.redis.client(decode_responses=True)
        wait_until(lambda: all(int(r.get(keys.applied(s)) or 0) == int(r.get(keys.seq(s)) or 0)
                               for s in SYMBOLS), timeout=60, what="the worker to drain")
        final = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        reports = storm.finish(final)
        complete = sum(all(rep["trades"].get(s, []) == list(range(1, final[s] + 1))
                           for s in SYMBOLS) for rep in reports)
        orders = sum(k != "errors" for k in sent)
        print(f"{orders} orders, trades {final}: {complete}/{len(reports)} clients got "
              f"every trade once, in order")
        assert all(rep["failed"] is None and rep["close_code"] is None and not rep["errors"]
                   for rep in reports), [rep for rep in reports if rep["failed"]][:3]
        assert sum(final.values()) > 0
        assert complete == CLIENTS
    finally:
        storm.close()
        node.close()
