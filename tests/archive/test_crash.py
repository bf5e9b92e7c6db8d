"""The mover as it runs in production (Celery beat + the archiver worker), killed with
SIGKILL at chosen points and at random: after a clean rerun every order, trade and journal
entry exists exactly once across Redis and the archive, and verify passes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from archive import db, tables
from archive.verify import verify
from localrun.processes import start_archiver, start_beat
from store import keys
from tests.archive.venue import Venue
from tests.support import stop, wait_until
from workers.archive_tasks import ARCHIVE_QUEUE, ARCHIVE_TASK
from workers.celery_app import make_celery

POINTS = ("archive_before_commit", "archive_after_commit", "archive_after_remove")


def _env(settings, **env) -> dict:
    return {"ARCHIVE_URL": settings.archive_url, "ARCHIVE_AFTER_SECONDS": "0",
            "ARCHIVE_BATCH": "7", "ARCHIVE_LEASE_MS": "500", "ARCHIVE_INTERVAL_SECONDS": "0.5",
            **env}


def archiver(settings, log: Path, **env) -> subprocess.Popen:
    return start_archiver(settings.redis_url, log, **_env(settings, **env))


def _trade(venue: Venue, n: int, ids: list[str]) -> None:
    for i in range(n):
        ids.append(venue.place(symbol="BTC-USD", side="BUY", price=str(100 + i % 5))["id"])
        ids.append(venue.place(symbol="BTC-USD", side="SELL", price="100", quantity="0.5")["id"])
        if i % 3 == 0:
            ids.append(venue.place(symbol="BTC-USD", side="SELL", price="99",
                                   postOnly=True)["id"])
    venue.match()


def placement(venue: Venue, archive_url: str, ids: list[str]) -> dict:
    """Where each order, trade and journal entry is: Redis, the archive, or both."""
    r = venue.r
    in_redis = {oid for oid in ids if r.exists(keys.order(oid))}
    with db.engine(archive_url).connect() as conn:
        archived = set(conn.scalars(sa.select(tables.orders.c.id)))
        trades_a = set(conn.scalars(sa.select(tables.trades.c.seq)))
        journal_a = set(conn.scalars(sa.select(tables.journal.c.seq)))
    trades_r = {keys.sequence_of(e) for e, _ in r.xrange(keys.trades("BTC-USD"))}
    journal_r = {keys.sequence_of(e) for e, _ in r.xrange(keys.journal("BTC-USD"))}
    n_trades = int(r.get(keys.trade_seq("BTC-USD")) or 0)
    n_cmds = int(r.get(keys.seq("BTC-USD")) or 0)
    assert in_redis | archived == set(ids), "an order was lost"
    assert trades_r | trades_a == set(range(1, n_trades + 1)), "a trade was lost"
    assert journal_r | journal_a == set(range(1, n_cmds + 1)), "a journal entry was lost"
    return {"orders": len(in_redis & archived), "trades": len(trades_r & trades_a),
            "journal": len(journal_r & journal_a), "archived": len(archived)}


def _send(settings) -> None:
    make_celery(settings).send_task(ARCHIVE_TASK, ("BTC-USD",), queue=ARCHIVE_QUEUE)


def _drained(venue: Venue) -> bool:
    return (venue.r.zcard(keys.final_orders("BTC-USD")) == 0
            and venue.r.xlen(keys.trades("BTC-USD")) == 0)


def _finish_with_beat(settings, venue: Venue, log, tmp_path) -> None:
    """A clean archiver scheduled by beat finishes every move the killed ones left."""
    beat = start_beat(settings.redis_url, log, tmp_path / "beat-schedule", **_env(settings))
    proc = archiver(settings, log)
    try:
        wait_until(lambda: _drained(venue), timeout=90, interval=0.2, what="the archiver")
    finally:
        stop(beat)
        stop(proc)


def test_kill_the_mover_at_each_point_then_rerun(archive_settings, tmp_path):
    settings = archive_settings
    venue = Venue(settings)
    ids: list[str] = []
    log = tmp_path / "archiver.log"
    for point in POINTS:
        _trade(venue, 12, ids)
        proc = archiver(settings, log, FAULT_POINTS=point, FAULT_PROBABILITY="1")
        try:
            _send(settings)
            assert proc.wait(timeout=60) == -9, f"the mover did not die at {point}"
        finally:
            stop(proc)
        where = placement(venue, settings.archive_url, ids)  # nothing lost at any point
        if point == "archive_after_commit":
            assert where["orders"] > 0 and where["trades"] > 0  # copied, not yet removed
    _finish_with_beat(settings, venue, log, tmp_path)
    where = placement(venue, settings.archive_url, ids)
    assert where["orders"] == where["trades"] == where["journal"] == 0, where
    assert where["archived"] == sum(1 for oid in ids if not venue.r.exists(keys.order(oid)))
    assert verify(venue.r, settings) == [] and verify(venue.r, settings, full=True) == []


@pytest.mark.parametrize("archive_url", ["sqlite"], indirect=True)
def test_kill_the_mover_at_random(archive_settings, tmp_path):
    settings = archive_settings
    venue = Venue(settings)
    ids: list[str] = []
    log = tmp_path / "archiver.log"
    for _ in range(3):
        _trade(venue, 10, ids)
        proc = archiver(settings, log, FAULT_POINTS=",".join(POINTS), FAULT_PROBABILITY="0.3")
        try:
            for _ in range(4):
                _send(settings)
            wait_until(lambda p=proc: p.poll() is not None or _drained(venue), timeout=60,
                       interval=0.2, what="a crash or a finished move")
        finally:
            stop(proc)
        placement(venue, settings.archive_url, ids)
    _finish_with_beat(settings, venue, log, tmp_path)
    where = placement(venue, settings.archive_url, ids)
    assert where["orders"] == where["trades"] == where["journal"] == 0, where
    assert verify(venue.r, settings) == [] and verify(venue.r, settings, full=True) == []


def test_verify_names_a_lost_or_doubled_row(archive_settings):
    venue = Venue(archive_settings)
    ids: list[str] = []
    _trade(venue, 3, ids)
    venue.move()
    assert verify(venue.r, archive_settings) == []
    with db.engine(archive_settings.archive_url).begin() as conn:
        conn.execute(sa.delete(tables.trades).where(tables.trades.c.seq == 1))
        conn.execute(sa.update(tables.orders).where(tables.orders.c.id == ids[1])
                     .values(fields=sa.func.replace(tables.orders.c.fields, "FILLED",
                                                    "CANCELLED")))
    diffs = verify(venue.r, archive_settings, full=True)  # both are below the checkpoint
    assert any("trade 1 is in neither" in d for d in diffs), diffs
    assert any(ids[1] in d and "status" in d for d in diffs), diffs
