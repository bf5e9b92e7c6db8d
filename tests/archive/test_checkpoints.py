"""Book checkpoints: written by the matcher, verified by the mover against the journal
replay before the journal below them leaves Redis; verify starts from the newest one."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from archive import checkpoints, db, tables
from archive.verify import verify
from store import keys
from tests.archive.venue import Venue


def _trade(venue: Venue, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ids.append(venue.place(symbol="BTC-USD", side="BUY", price=str(100 + i % 7))["id"])
        ids.append(venue.place(symbol="BTC-USD", side="SELL", price="103", quantity="0.4")["id"])
    venue.match()
    return ids


def _verified(url: str) -> list[int]:
    with db.engine(url).connect() as conn:
        return list(conn.scalars(sa.select(tables.checkpoints.c.seq)
                                 .order_by(tables.checkpoints.c.seq)))


def test_checkpoint_round_trip_and_verified_before_the_journal_moves(archive_settings):
    venue = Venue(archive_settings.replace(checkpoint_every=8))
    _trade(venue, 10)
    raw = venue.r.get(keys.checkpoint("BTC-USD"))
    snap = orjson.loads(raw)
    assert snap["seq"] == 20 and snap["orders"]  # the end of the batch that crossed 8
    assert checkpoints.snapshot(checkpoints.restore("BTC-USD", snap)) == snap
    venue.place(symbol="BTC-USD", side="BUY", price="90")  # 21: after the checkpoint
    venue.match()
    venue.move()
    assert _verified(archive_settings.archive_url) == [snap["seq"]]
    first = venue.r.xrange(keys.journal("BTC-USD"), count=1)[0][0]
    assert keys.sequence_of(first) == snap["seq"] + 1  # the journal moved up to it

    # A checkpoint that does not match the replay is not trusted: the journal stays.
    _trade(venue, 10)
    bad = orjson.loads(venue.r.get(keys.checkpoint("BTC-USD")))
    bad["orders"][0]["filled"] = "999"
    venue.r.set(keys.checkpoint("BTC-USD"), orjson.dumps(bad))
    venue.move()
    assert _verified(archive_settings.archive_url) == [snap["seq"]]
    first = venue.r.xrange(keys.journal("BTC-USD"), count=1)[0][0]
    assert keys.sequence_of(first) == snap["seq"] + 1
    assert verify(venue.r, archive_settings) == []
    assert verify(venue.r, archive_settings, full=True) == []


def test_verify_from_a_checkpoint_sees_a_later_difference(archive_settings):
    venue = Venue(archive_settings.replace(checkpoint_every=8))
    ids = _trade(venue, 10)
    venue.move()
    later = _trade(venue, 3)
    assert verify(venue.r, archive_settings) == []
    venue.r.hset(keys.order(later[0]), "filled", "7")
    diffs = verify(venue.r, archive_settings)
    assert any(later[0] in d and "filled" in d for d in diffs), diffs
    assert ids  # the earlier orders were checked when their checkpoint was verified
