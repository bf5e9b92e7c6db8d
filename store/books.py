"""Rebuild a symbol's in-memory book from what Redis holds (worker start, after a fence)."""

from __future__ import annotations

import redis

from engine.book import OrderBook
from engine.types import Status
from store import codec, keys


def load_book(r: redis.Redis, symbol: str) -> OrderBook:
    """The book as of the applied cursor: resting orders in queue (rank) order, untriggered
    stops in their stop books, the last trade price."""
    with r.pipeline(transaction=True) as pipe:
        pipe.get(keys.applied(symbol))
        pipe.get(keys.trade_seq(symbol))
        pipe.get(keys.last_price(symbol))
        pipe.zrange(keys.resting(symbol), 0, -1)
        applied, trade_seq, last_price, ids = pipe.execute()
    book = OrderBook(symbol)
    book.last_sequence = int(applied or 0)
    book.trade_sequence = int(trade_seq or 0)
    book.last_price = int(last_price) if last_price else None
    resting = []
    for start in range(0, len(ids), 1000):
        with r.pipeline(transaction=False) as pipe:
            for order_id in ids[start:start + 1000]:
                pipe.hgetall(keys.order(order_id))
            for h in pipe.execute():
                order = codec.order_from_hash(h)
                if order.status == Status.UNTRIGGERED:
                    book.add_stop(order)
                else:
                    resting.append(order)
    # A triggered stop queues from its trigger, not its acceptance: sort by rank.
    for order in sorted(resting, key=lambda o: o.rank):
        book.rest(order)
    return book
