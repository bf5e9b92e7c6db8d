"""Market data end to end (api.md section 10): server time, candles and the 24 h ticker
built by the real worker from the trades, equal to what /api/trades says."""

from __future__ import annotations

import time


def test_server_time(stack):
    before = int(time.time() * 1000)
    reply = stack.client.get("/api/time")
    after = int(time.time() * 1000)
    assert reply.status_code == 200
    assert set(reply.json) == {"serverTime"} and before <= reply.json["serverTime"] <= after
    bad = stack.client.get("/api/time?x=1")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "VALIDATION_ERROR"
