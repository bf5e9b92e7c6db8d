"""Archived orders and trades read back exactly as they did from Redis, and cursors walk
from Redis into the archive without a gap or a repeat (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import SQLAlchemyError

from archive import mover as mover_module
from archive.verify import verify
from store import keys
from tests.archive.venue import Venue

ORDER_QUERIES = ["/api/orders", "/api/orders?symbol=BTC-USD", "/api/orders?symbol=ETH-USD",
                 "/api/orders?status=FILLED", "/api/orders?status=FILLED,CANCELLED",
                 "/api/orders?status=OPEN,PARTIAL", "/api/orders?side=SELL",
                 "/api/orders?symbol=BTC-USD&side=BUY&status=PARTIAL,FILLED"]
TRADE_QUERIES = ["/api/trades?symbol=BTC-USD", "/api/trades?symbol=ETH-USD"]


def _history(venue: Venue, order_ids) -> dict:
    """Everything the reads show: each order with fills, every list walked at two page sizes."""
    seen = {oid: venue.get(f"/api/orders/{oid}") for oid in order_ids}
    for path in ORDER_QUERIES:
        for limit in (1, 3, 1000):
            seen[(path, limit)] = venue.walk(path, "orders", limit)
    for path in TRADE_QUERIES:
        for limit in (1, 2, 1000):
            seen[(path, limit)] = venue.walk(path, "trades", limit)
        seen[(path, "latest")] = venue.get(path.replace("trades", "trades/latest")
                                           + "&limit=5")["trades"]
    return seen


def _trading(venue: Venue) -> list[str]:
    """Open orders old and new around final ones, so the account index interleaves."""
    ids = []
    for symbol in ("BTC-USD", "ETH-USD"):
        ids += [venue.place(symbol=symbol, side="BUY", price=str(100 + i))["id"]
                for i in range(4)]
        ids.append(venue.place(symbol=symbol, side="SELL", price="102", quantity="2.5",
                               clientOrderId=f"taker-{symbol}")["id"])
        ids.append(venue.place(symbol=symbol, side="SELL", price="200")["id"])  # rests
        venue.match()
        cancelled = venue.place(symbol=symbol, side="BUY", price="50")["id"]
        venue.match()
        assert venue.cancel(cancelled).status_code == 202
        ids.append(cancelled)
        ids.append(venue.place(symbol=symbol, side="SELL", price="99", postOnly=True)["id"])
        ids.append(venue.place(symbol=symbol, side="BUY", price="60")["id"])  # newest, open
        venue.match()
    return ids


def test_archived_history_reads_the_same(archive_settings):
    venue = Venue(archive_settings)
    ids = _trading(venue)
    before = _history(venue, ids)
    statuses = {before[oid]["status"] for oid in ids}
    assert {"FILLED", "CANCELLED", "REJECTED", "OPEN", "PARTIAL"} <= statuses

    moved = venue.move()
    assert moved.orders == sum(before[oid]["status"] in {"FILLED", "CANCELLED", "REJECTED"}
                               for oid in ids)
    assert moved.trades == len(before[(TRADE_QUERIES[0], 1000)]) * 2
    for oid in ids:
        in_redis = venue.r.exists(keys.order(oid))
        assert bool(in_redis) == (before[oid]["status"] in {"OPEN", "PARTIAL"}), oid
    assert venue.r.xlen(keys.trades("BTC-USD")) == 0
    assert _history(venue, ids) == before
    assert verify(venue.r, archive_settings) == []
    assert verify(venue.r, archive_settings, full=True) == []
    assert venue.r.xlen(keys.journal("BTC-USD")) < 5  # below the checkpoint it moved

    # A cancel of an archived order is a 409 as before; a clientOrderId replay is a 200.
    filled = next(oid for oid in ids if before[oid]["status"] == "FILLED")
    reply = venue.cancel(filled)
    assert reply.status_code == 409, reply.get_json()
    taker = before[ids[4]]
    again = venue.http.post("/api/orders", json={
        "symbol": "BTC-USD", "side": "SELL", "price": "102", "quantity": "2.5",
        "clientOrderId": "taker-BTC-USD"})
    assert again.status_code == 200 and again.get_json() == taker
    assert venue.move().any is False  # nothing left to move


def test_walks_stay_exact_in_every_state_of_a_move(archive_settings, monkeypatch):
    """Part moved, part copied but not yet removed (a mover that died), then finished."""
    venue = Venue(archive_settings.replace(archive_batch=2))
    ids = _trading(venue)
    before = _history(venue, ids)
    venue.move(steps=1)  # two orders and two trades of each symbol moved
    assert _history(venue, ids) == before
    real_remove = mover_module.Mover._remove_from_redis
    monkeypatch.setattr(mover_module.Mover, "_remove_from_redis", lambda *a: (0, 0))
    venue.move(steps=1)  # copied and committed, still in Redis too
    assert _history(venue, ids) == before
    assert verify(venue.r, archive_settings) == []
    monkeypatch.setattr(mover_module.Mover, "_remove_from_redis", real_remove)
    venue.move()
    assert _history(venue, ids) == before
    assert verify(venue.r, archive_settings) == []


@pytest.mark.parametrize("archive_url", ["postgresql"], indirect=True)
def test_archive_down_matching_goes_on(archive_settings, postgres):
    venue = Venue(archive_settings)
    ids = _trading(venue)
    venue.move()
    postgres.stop()
    try:
        # Accepting and matching go on; reads Redis can answer still work.
        fresh = venue.place(symbol="BTC-USD", side="SELL", price="100")
        venue.match()
        assert venue.get(f"/api/orders/{fresh['id']}")["status"] == "FILLED"
        with pytest.raises(SQLAlchemyError):  # the mover fails and touches nothing in Redis
            venue.move()
        assert venue.r.exists(keys.order(fresh["id"]))
        assert venue.get("/api/orderbook?symbol=BTC-USD")["bids"]
        error = venue.get(f"/api/orders/{ids[3]}", status=503)["error"]
        assert error["code"] == "ARCHIVE_UNAVAILABLE"
    finally:
        postgres.restart()
    assert venue.move().orders >= 1  # the next run moves what waited
    assert venue.get(f"/api/orders/{ids[3]}")["status"] == "FILLED"
