"""Capacity of one node. ``IDLE_CLIENTS`` (5000) WebSocket clients from 4 processes
subscribe to ``trade`` on BTC-USD and ETH-USD and stay idle past the server's ping
interval (the server pings, the clients answer); none is closed, and then every one
gets every trade of a short order stream. Prints the web node's memory per connection,
which must stay under ``MAX_KIB_PER_CONNECTION`` (issue #11: 44 KiB; ~35 KiB measured
since each socket is read on its own greenlet, app/ws/transport.py).

``make test`` runs it with the node's ping interval at ``IDLE_PING_INTERVAL`` (5 s: the
same pings, sooner; about a minute in all); ``make test-capacity`` at the production
25 s."""

from __future__ import annotations

import collections
import os
import time

import pytest

from bench.measure import rss_mb
from bench.ws_bench import _post_flow
from localrun.node import Node
from localrun.ws_crowd import Storm, raise_fd_limit
from store import keys
from tests.support import wait_until

pytestmark = pytest.mark.slow

CLIENTS = int(os.environ.get("IDLE_CLIENTS", "5000"))
SYMBOLS = ("BTC-USD", "ETH-USD")
PING_INTERVAL = float(os.environ.get("IDLE_PING_INTERVAL", "5"))  # WS_PING_INTERVAL
MAX_KIB_PER_CONNECTION = 44


def test_idle_connections_held_past_the_ping_interval_then_all_get_trades(tmp_path):
    raise_fd_limit()
    node = Node(tmp_path, WS_PING_INTERVAL=str(PING_INTERVAL))
    storm = Storm(node.port, CLIENTS, 4, SYMBOLS)
    try:
        rss_before = rss_mb(node.web.pid)
        acked, seconds = storm.connect(timeout=300)
        time.sleep(2)  # allocations settle
        rss_held = rss_mb(node.web.pid)
        per_conn_kib = (rss_held - rss_before) * 1024 / max(1, acked)
        print(f"\n{acked}/{CLIENTS} idle clients subscribed in {seconds:.1f} s; web RSS "
              f"{rss_before} -> {rss_held} MB: {per_conn_kib:.1f} KiB per connection")
        if acked != CLIENTS:  # say why before failing
            reports = storm.finish({}, timeout=1)
            why = collections.Counter(
                rep["failed"] or (rep["errors"][0]["code"] if rep["errors"] else None)
                or f"close {rep['close_code']}" for rep in reports if rep["acks"] != 2)
            pytest.fail(f"{CLIENTS - acked} not subscribed: {dict(why)}")
        assert per_conn_kib < MAX_KIB_PER_CONNECTION
        time.sleep(PING_INTERVAL + 5)  # at least one server ping answered by everyone
        sent, stop_at = {}, []
        _post_flow(node.port, 100, 2, sent, stop_at)
        r = node.redis.client(decode_responses=True)
        wait_until(lambda: all(int(r.get(keys.applied(s)) or 0) == int(r.get(keys.seq(s)) or 0)
                               for s in SYMBOLS), timeout=60, what="the worker to drain")
        final = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        reports = storm.finish(final, timeout=120)
        closed = [rep for rep in reports if rep["close_code"] is not None or rep["failed"]]
        complete = sum(all(rep["trades"].get(s, []) == list(range(1, final[s] + 1))
                           for s in SYMBOLS) for rep in reports)
        print(f"after {PING_INTERVAL + 5:.0f} s idle: {len(closed)} closed; trades {final}: "
              f"{complete}/{len(reports)} clients got every one")
        assert closed == []
        assert sum(final.values()) > 0 and complete == CLIENTS
    finally:
        storm.close()
        node.close()
