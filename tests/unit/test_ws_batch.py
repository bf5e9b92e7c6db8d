"""How the relay turns one hub batch into shared frames (app.ws): merged book updates and
trade runs, and when it must fall back to one commit at a time."""

import orjson

from app.events import Batch
from app.ws import _merged_book, _trade_run


def batch_of(*commits) -> Batch:
    batch = Batch("BTC-USD")
    for c in commits:
        event = {"type": "commit", "symbol": "BTC-USD", **c}
        batch.events.append(event)
        batch.commits.append(event)
    return batch


def change(side, price, quantity, orders=1):
    return {"side": side, "price": price, "quantity": quantity, "orders": orders}


def test_chained_commits_merge_to_last_totals():
    merged = _merged_book(batch_of(
        {"sequence": 5, "prevSequence": 4, "changes": [change("BUY", 10.0, 1.0)]},
        {"sequence": 6, "prevSequence": 5,
         "changes": [change("SELL", 11.0, 2.0), change("BUY", 10.0, 0, 0)]},
        {"sequence": 7, "prevSequence": 6, "changes": []},
    ))
    assert (merged.prev, merged.sequence, merged.changed_at) == (4, 7, 6)
    assert merged.changes == [change("BUY", 10.0, 0, 0), change("SELL", 11.0, 2.0)]


def test_merged_update_carries_the_checksum_of_its_last_book_change():
    merged = _merged_book(batch_of(
        {"sequence": 5, "prevSequence": 4, "changes": [change("BUY", 10.0, 1.0)],
         "checksum": 11},
        {"sequence": 6, "prevSequence": 5, "changes": [change("BUY", 10.0, 2.0)],
         "checksum": 22},
        {"sequence": 7, "prevSequence": 6, "changes": []},  # no change: no checksum
    ))
    assert (merged.changed_at, merged.checksum) == (6, 22)


def test_a_hole_in_the_chain_is_not_merged():
    assert _merged_book(batch_of(
        {"sequence": 5, "prevSequence": 4, "changes": []},
        {"sequence": 7, "prevSequence": 6, "changes": []},
    )) is None


def test_no_changes_still_moves_the_chain():
    merged = _merged_book(batch_of({"sequence": 5, "prevSequence": 4, "changes": []}))
    assert (merged.sequence, merged.changed_at, merged.changes) == (5, None, [])


def test_consecutive_trades_make_one_run_of_frames():
    t = [{"symbol": "BTC-USD", "sequence": s, "price": 1.0} for s in (3, 4, 5)]
    run = _trade_run(batch_of({"sequence": 1, "prevSequence": 0, "trades": t[:2]},
                              {"sequence": 2, "prevSequence": 1, "trades": t[2:]}))
    assert (run.first, run.last) == (3, 5)
    frames, sequences = run.frames, []
    while frames:  # unmasked short text frames: 0x81, length, payload
        assert frames[0] == 0x81
        n = frames[1]
        sequences.append(orjson.loads(frames[2:2 + n])["sequence"])
        frames = frames[2 + n:]
    assert sequences == [3, 4, 5]


def test_trades_out_of_step_are_not_a_run():
    t = [{"sequence": s} for s in (3, 5)]
    assert _trade_run(batch_of({"sequence": 1, "prevSequence": 0, "trades": t})) is None
    empty = _trade_run(batch_of({"sequence": 1, "prevSequence": 0, "trades": []}))
    assert (empty.first, empty.frames) == (None, b"")
