"""The book checksum (schemas.checksum): the text it hashes, depth, and the engine path."""

import zlib

from engine.book import OrderBook
from engine.types import Order, OrderType, Side, Status, TimeInForce
from schemas.checksum import checksum, checksum_of_book, checksum_of_levels
from schemas.markets import get_market
from settings import Settings


def crc(text: str) -> int:
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def test_text_is_price_colon_quantity_as_json_writes_them():
    assert checksum([(101.25, 3.0), (101.2, 0.5)], [(101.3, 1e-3)]) == crc(
        "101.25:3.0|101.2:0.5|101.3:0.001")
    assert checksum([], []) == 0 == crc("")
    assert checksum([], [(5.0, 2.0)]) == crc("5.0:2.0")


def test_best_25_of_each_side_only():
    bids = [(100.0 - i, 1.0) for i in range(30)]
    asks = [(200.0 + i, 2.0) for i in range(30)]
    want = "|".join([f"{100.0 - i}:1.0" for i in range(25)] + [f"{200.0 + i}:2.0"
                                                               for i in range(25)])
    assert checksum(bids, asks) == crc(want)
    assert checksum(bids, asks) == checksum(bids[:25], asks[:25])


def test_levels_and_engine_book_agree():
    market = get_market(Settings(), "BTC-USD")  # tick 0.01, lot 0.001
    book = OrderBook("BTC-USD")
    for i, (side, price, qty) in enumerate([("BUY", 10125, 3000), ("BUY", 10120, 500),
                                            ("SELL", 10130, 1), ("BUY", 10125, 1000)]):
        book.rest(Order(id=f"o{i}", side=Side(side), order_type=OrderType.LIMIT,
                        time_in_force=TimeInForce.GTC, price=price, quantity=qty,
                        sequence=i + 1, timestamp=0, account_id="a", status=Status.OPEN))
    want = crc("101.25:4.0|101.2:0.5|101.3:0.001")
    assert checksum_of_book(market, book) == want
    assert checksum_of_levels([{"price": 101.25, "quantity": 4.0, "orders": 2},
                               {"price": 101.2, "quantity": 0.5, "orders": 1}],
                              [{"price": 101.3, "quantity": 0.001, "orders": 1}]) == want
