"""The order book checksum every ``orderbook`` WebSocket message carries.

CRC32 (unsigned) of the UTF-8 text made of the best 25 bids (highest first) then the
best 25 asks (lowest first), each level written ``price:quantity`` exactly as the JSON
numbers of the message write them (``101.25:3.0``), joined with ``|``; the book after
the message. An empty book gives the CRC32 of the empty string, 0.

One function serves the worker (which puts it on each commit that changed the book),
the relay (snapshots) and the tests, so they cannot disagree on the text.
A JavaScript client writes a number the same way with
``Number.isInteger(x) ? x.toFixed(1) : String(x)`` (both languages print the shortest
text that reads back as the same double; Python keeps a ``.0`` on whole numbers).
"""

from __future__ import annotations

import zlib

import orjson

DEPTH = 25


def checksum(bids, asks) -> int:
    """``bids``, ``asks``: (price, quantity) pairs of output numbers, best first."""
    numbers = [x for level in bids[:DEPTH] for x in level]
    numbers += [x for level in asks[:DEPTH] for x in level]
    if not numbers:
        return 0
    # One orjson call writes every number exactly as the JSON of the message does.
    texts = orjson.dumps(numbers)[1:-1].split(b",")
    parts = [texts[i] + b":" + texts[i + 1] for i in range(0, len(texts), 2)]
    return zlib.crc32(b"|".join(parts)) & 0xFFFFFFFF


def checksum_of_levels(bids: list[dict], asks: list[dict]) -> int:
    """The checksum of REST/snapshot levels (``{"price", "quantity", ...}`` dicts)."""
    return checksum([(lv["price"], lv["quantity"]) for lv in bids[:DEPTH]],
                    [(lv["price"], lv["quantity"]) for lv in asks[:DEPTH]])


def checksum_of_book(market, book) -> int:
    """The checksum of an engine ``OrderBook`` (integer ticks and lots) in ``market``."""
    # market.price/quantity inlined (the same one division, so the same float): this runs
    # on every commit that changes the book.
    tn, td = market.tick_size.as_integer_ratio()
    ln, ld = market.lot_size.as_integer_ratio()
    return checksum([(p * tn / td, q * ln / ld) for p, q, _ in book.levels("BUY", DEPTH)],
                    [(p * tn / td, q * ln / ld) for p, q, _ in book.levels("SELL", DEPTH)])
