"""The relay's pure feeds (app.ws.feeds), without sockets or Redis: merged book updates
and trade runs shared by connections in step, the book chain and its gaps, trade holes,
and order_status kept in publish order among the book updates."""

import orjson

from app.events import Batch
from app.ws.feeds import (
    SNAPSHOT_NEEDED,
    Backfill,
    BookChain,
    in_step,
    order_frames,
    runs,
    step_trades,
)
from app.ws.feeds import merged_book as _merged_book
from app.ws.feeds import trade_run as _trade_run


def batch_of(*commits) -> Batch:
    """A hub batch; an item with "type": "accepted" is an accept message, others commits."""
    batch = Batch("BTC-USD")
    for c in commits:
        event = {"type": "commit", "symbol": "BTC-USD", **c}
        batch.events.append(event)
        if event["type"] == "commit":
            batch.commits.append(event)
    return batch


def frames_of(data: bytes) -> list[dict]:
    """Unmasked server text frames back to JSON (short and 16-bit lengths)."""
    out = []
    while data:
        assert data[0] == 0x81
        n, head = data[1], 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        out.append(orjson.loads(data[head:head + n]))
        data = data[head + n:]
    return out


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


def test_book_chain_sends_updates_with_the_previous_sent_sequence():
    book = BookChain()
    assert book.on_commit("BTC-USD", {"sequence": 1, "prevSequence": 0}) is SNAPSHOT_NEEDED
    snap = frames_of(book.snapshot_frame("BTC-USD", {"sequence": 4, "bids": [], "asks": []}))
    assert (snap[0]["type"], snap[0]["sequence"]) == ("snapshot", 4)
    assert book.on_commit("BTC-USD", {"sequence": 3, "prevSequence": 2}) is None  # in it
    assert book.on_commit("BTC-USD", {"sequence": 5, "prevSequence": 4, "changes": []}) is None
    update = frames_of(book.on_commit("BTC-USD", {
        "sequence": 6, "prevSequence": 5, "changes": [change("BUY", 10.0, 1.0)]}))[0]
    assert (update["sequence"], update["prevSequence"]) == (6, 4)
    assert book.on_commit("BTC-USD", {"sequence": 9, "prevSequence": 8}) is SNAPSHOT_NEEDED


def test_step_trades_stops_at_a_hole_and_skips_what_was_sent():
    trades = [{"sequence": s} for s in (2, 3, 6, 7)]
    sent, last, hole = step_trades(1, trades)
    assert (len(sent), last, hole) == (2, 3, Backfill(5))
    sent, last, hole = step_trades(5, trades)  # after the backfill of 4..5
    assert ([f["sequence"] for f in frames_of(b"".join(sent))], last, hole) == ([6, 7], 7, None)
    assert step_trades(7, trades) == ([], 7, None)  # a redelivered message


def test_in_step_needs_the_chain_and_the_next_trade():
    batch = batch_of({"sequence": 5, "prevSequence": 4, "changes": [change("BUY", 10.0, 1.0)],
                      "trades": [{"sequence": 8}]})
    book = BookChain()
    book.chain = book.last_sent = 4
    step = in_step(batch, book, 7)
    assert (step.chain, step.last_sent, step.last_trade) == (5, 5, 8)
    assert [f["event"] for f in frames_of(b"".join(step.frames))] == ["orderbook", "trade"]
    assert book.chain == 4  # in_step changes nothing
    assert in_step(batch, book, 6) is None  # trade 7 missing: backfill first
    book.chain = 3
    assert in_step(batch, book, 7) is None  # chain broken: snapshot first


def test_runs_cut_the_batch_where_an_accept_sits_between_commits():
    batch = batch_of(
        {"sequence": 1, "prevSequence": 0},
        {"type": "accepted", "orders": [{"id": "o2", "status": "PENDING"}]},
        {"sequence": 2, "prevSequence": 1, "orders": [{"id": "o2", "status": "OPEN"}]},
        {"sequence": 3, "prevSequence": 2},
    )
    pieces = runs(batch)
    assert [[e.get("sequence") for e in p.events] for p in pieces] == [[1], [None], [2, 3]]
    assert [len(p.commits) for p in pieces] == [1, 0, 2]
    assert runs(batch) is pieces  # built once per batch


def test_order_frames_filter_by_symbol_id_and_account():
    batch = batch_of(
        {"type": "accepted", "orders": [{"id": "a", "accountId": "alice"},
                                        {"id": "b", "accountId": "bob"}]},
        {"sequence": 1, "prevSequence": 0, "orders": [{"id": "a", "accountId": "alice"}]},
    )
    ids = lambda fs: [f["id"] for f in frames_of(b"".join(fs))]  # noqa: E731
    assert ids(order_frames(batch, True, (), None)) == ["a", "b", "a"]
    assert ids(order_frames(batch, False, {"b"}, None)) == ["b"]
    assert ids(order_frames(batch, True, (), "alice")) == ["a", "a"]
    assert order_frames(batch, True, (), None)[0] is order_frames(batch, True, (), None)[0]
