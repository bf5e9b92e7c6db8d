"""store.verify: replay the journal, name every difference, rebuild; and the commit fence.

In-process and fast (needs only Redis): the worker's SymbolMatcher runs in the test against
the session's redis-server (no Celery), so the fence can be driven step by step.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import redis as redis_lib

from schemas.markets import get_market
from schemas.orders import PlaceOrderSchema
from store import journal, keys
from store.commit import Fenced
from store.verify import RebuildRefused, rebuild_symbol, verify
from tests.support import ROOT
from workers.apply import SymbolMatcher
from workers.lease import Lease

SYMBOL = "BTC-USD"


@pytest.fixture
def rs(redis_url):
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def _place(rs, settings, n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    market = get_market(settings, SYMBOL)
    schema = PlaceOrderSchema(settings)
    items = []
    for i in range(n):
        body = {"symbol": SYMBOL, "side": rng.choice(["BUY", "SELL"]),
                "price": f"{100 + rng.randint(-5, 5) * 0.01:.2f}",
                "quantity": f"{rng.randint(1, 9) * 0.001:.3f}"}
        if rng.random() < 0.15:
            body["timeInForce"] = "IOC"
        if i % 5 == 0:
            body["clientOrderId"] = f"c{seed}-{i}"
        items.append((market, "anonymous", schema.load(body), f"req{i}"))
    return [a.order_id for a in journal.accept_many(rs, items)]


def _matcher(rs, settings) -> SymbolMatcher:
    lease = Lease(rs, SYMBOL)
    assert lease.renew()
    return SymbolMatcher(rs, get_market(settings, SYMBOL), lease, settings)


def test_verify_ok_after_matching(rs, settings):
    ids = _place(rs, settings, 300)
    m = _matcher(rs, settings)
    assert m.drain() == 300
    journal.request_cancel(rs, ids[3], None, "c1")
    journal.request_cancel(rs, ids[10], None, "c2")
    m.drain()
    assert int(rs.xlen(keys.trades(SYMBOL))) > 0  # the mix does trade
    assert verify(rs, settings) == []
    # Accepted but not yet applied: PENDING orders are consistent too.
    _place(rs, settings, 20, seed=8)
    assert verify(rs, settings) == []


def test_verify_names_each_difference_and_rebuild_repairs(rs, settings):
    ids = _place(rs, settings, 200)
    m = _matcher(rs, settings)
    m.drain()
    resting = rs.zrange(keys.resting(SYMBOL), 0, -1)
    filled = [oid for oid in ids if rs.hget(keys.order(oid), "status") == "FILLED"]
    assert resting and filled
    rs.hset(keys.order(filled[0]), "status", "OPEN")  # a wrong status
    rs.zrem(keys.resting(SYMBOL), resting[0])  # a resting order dropped
    rs.zadd(keys.book(SYMBOL, "BUY"), {"1:1:1": 1})  # a level that does not exist
    rs.xdel(keys.trades(SYMBOL), keys.stream_id(2))  # a trade gap
    rs.rpush(keys.order_fills(filled[0]), 999)  # a doubled fill
    diffs = verify(rs, settings)
    text = "\n".join(diffs)
    assert f"order {filled[0]} status is 'OPEN'" in text
    assert f"resting set lacks {resting[0]}" in text
    assert "BUY levels differ" in text
    assert "trade stream entry 3-1 where 2-1 was due" in text
    assert f"order {filled[0]} fills" in text
    # The live worker holds the lease: rebuild refuses.
    with pytest.raises(RebuildRefused):
        rebuild_symbol(rs, get_market(settings, SYMBOL))
    m.lease.release()
    counts = rebuild_symbol(rs, get_market(settings, SYMBOL))
    assert counts["orders"] == 200
    assert verify(rs, settings) == []
    assert rs.get(keys.owner(SYMBOL)) is None  # the rebuild gave the lease back
    # A worker carries on from the rebuilt state.
    m2 = _matcher(rs, settings)
    _place(rs, settings, 50, seed=9)
    assert m2.drain() == 50
    assert verify(rs, settings) == []


def test_torn_commit_is_detected_and_rebuilt(rs, settings):
    """A commit that wrote orders but not the cursor (a Lua error mid-script is not
    rolled back) leaves a book the worker cannot reload; verify names it, rebuild heals."""
    ids = _place(rs, settings, 40)
    m = _matcher(rs, settings)
    m.drain()
    _place(rs, settings, 5, seed=11)
    # Simulate the torn write: the next order rests in Redis but the cursor stays.
    entry = journal.read_after(rs, SYMBOL, int(rs.get(keys.applied(SYMBOL))), 1)[0][0]
    rs.zadd(keys.resting(SYMBOL), {entry.order_id: entry.sequence})
    rs.hset(keys.order(entry.order_id), mapping={"status": "OPEN"})
    assert any(entry.order_id in d for d in verify(rs, settings))
    m.lease.release()
    rebuild_symbol(rs, get_market(settings, SYMBOL))
    assert verify(rs, settings) == []
    assert _matcher(rs, settings).drain() == 5
    assert verify(rs, settings) == [] and ids


def test_stale_worker_is_fenced(rs, settings):
    """Worker A loses its lease (expired while it was paused); B takes over and commits;
    A, still believing it holds the lease, tries to commit: fenced, nothing written."""
    _place(rs, settings, 50)
    a = _matcher(rs, settings)
    a.drain()
    _place(rs, settings, 30, seed=12)
    rs.delete(keys.owner(SYMBOL))  # A's lease expired (paused past its TTL)
    b = _matcher(rs, settings)
    assert b.drain() == 30
    before = (rs.get(keys.applied(SYMBOL)), rs.xlen(keys.trades(SYMBOL)))
    _place(rs, settings, 10, seed=13)
    assert a.lease.held  # stale belief: the maintenance thread has not run yet
    assert a.drain() == 0  # its book was behind: the cursor check fences it
    assert a.book is None  # dropped, to be rebuilt from Redis if it ever gets the lease
    # Even with a book that is up to date, a wrong token is fenced.
    from store.books import load_book
    from store.commit import commit
    book = load_book(rs, SYMBOL)
    with pytest.raises(Fenced):
        commit(rs, get_market(settings, SYMBOL), a.lease.token, book.last_sequence,
               book.last_sequence + 1, [], 0)
    assert (rs.get(keys.applied(SYMBOL)), rs.xlen(keys.trades(SYMBOL))) == before
    assert b.drain() == 10
    assert verify(rs, settings) == []


def test_cli_exit_codes(rs, settings, redis_url):
    _place(rs, settings, 30)
    m = _matcher(rs, settings)
    m.drain()
    m.lease.release()
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "store.verify"]
    ok = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().splitlines()[-1] == "OK"
    assert f"{SYMBOL}: OK" in ok.stdout
    rs.set(keys.trade_seq(SYMBOL), 12345)
    bad = subprocess.run(run + ["--symbol", SYMBOL], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "trade sequence is 12345" in bad.stdout
    fixed = subprocess.run(run + ["--rebuild"], cwd=ROOT, env=env, capture_output=True,
                           text=True)
    assert fixed.returncode == 0, fixed.stdout
    assert "REBUILT" in fixed.stdout


def test_a_lapsed_lease_fences_the_commit(rs, settings):
    """The fence is the token check inside commit.lua (there is no WATCH): a worker whose
    lease key expired writes nothing, even while no other worker holds the lease and its
    book is up to date; renewing takes the lease again and the commands go through."""
    _place(rs, settings, 20)
    m = _matcher(rs, settings)
    m.drain()
    _place(rs, settings, 5, seed=14)
    rs.delete(keys.owner(SYMBOL))  # the lease expired (the worker paused past its TTL)
    before = (rs.get(keys.applied(SYMBOL)), rs.xlen(keys.trades(SYMBOL)))
    assert m.lease.held  # stale belief: the maintenance thread has not run yet
    assert m.drain() == 0
    assert m.book is None  # dropped, rebuilt from Redis once it holds the lease again
    assert (rs.get(keys.applied(SYMBOL)), rs.xlen(keys.trades(SYMBOL))) == before
    assert m.lease.renew()
    assert m.drain() == 5
    assert verify(rs, settings) == []
