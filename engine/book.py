"""The order book of one symbol: price levels, FIFO queues, an index by order id.

Bids and asks are each a dict ``price -> Level`` plus a ``SortedList`` of the prices
present; the best price of each side is cached so ``best_bid``/``best_ask`` are O(1).
A level keeps its orders in a ``deque``; a cancel only marks the order CANCELLED and
fixes the level totals (O(1) even deep in the queue). Cancelled orders left in a queue
are garbage: they are popped when they reach the head and the queue is compacted when
garbage outnumbers live orders, so memory and iteration stay O(live orders).

The matcher (``engine.matcher``) manipulates these structures directly; everything here
is plain data, no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from sortedcontainers import SortedList

from .types import (
    RANK_SHIFT,
    Order,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
)

_CANCELLED = Status.CANCELLED
_RESTING_STATUSES = (Status.OPEN, Status.PARTIAL)
_GARBAGE_SLACK = 8  # compact a queue once garbage > live orders + this


class Level:
    """One price level: FIFO queue (with lazy deletion) and live totals."""

    __slots__ = ("side", "price", "queue", "quantity", "count")

    def __init__(self, side: Side, price: int) -> None:
        self.side = side
        self.price = price
        self.queue: deque[Order] = deque()
        self.quantity = 0  # sum of remaining quantity of the live orders
        self.count = 0  # number of live orders

    def live(self) -> list[Order]:
        """The live orders in FIFO order. Cost: O(queue length)."""
        return [o for o in self.queue if o.status is not _CANCELLED]

    def compact(self) -> None:
        """Drop the cancelled orders from the queue. Cost: O(queue length)."""
        self.queue = deque(o for o in self.queue if o.status is not _CANCELLED)

    def __repr__(self) -> str:
        return f"Level({self.side} {self.price}: {self.quantity} in {self.count})"


class OrderBook:
    """The resting orders of one symbol, in price-time priority.

    ``last_sequence`` is the last applied command sequence, ``trade_sequence`` the last
    trade sequence, ``last_price`` the last trade price (None before the first trade),
    ``orders`` the resting orders by id, ``stops`` the untriggered stop orders by id (not
    in the book: a stop book per side, ordered by stop price then sequence). Mutate it
    only through ``engine.apply`` (or ``rest`` / ``add_stop`` when rebuilding).
    """

    __slots__ = (
        "symbol",
        "last_sequence",
        "trade_sequence",
        "orders",
        "last_price",
        "stops",
        "_buy_stops",
        "_sell_stops",
        "_bids",
        "_asks",
        "_bid_prices",
        "_ask_prices",
        "_best_bid",
        "_best_ask",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.last_sequence = 0
        self.trade_sequence = 0
        self.orders: dict[str, Order] = {}
        self.last_price: int | None = None
        self.stops: dict[str, Order] = {}
        # (stop price, sequence, id), ascending: BUY stops trigger from the low end (last
        # >= stop), SELL stops from the high end (last <= stop).
        self._buy_stops = SortedList()
        self._sell_stops = SortedList()
        self._bids: dict[int, Level] = {}
        self._asks: dict[int, Level] = {}
        self._bid_prices = SortedList()  # ascending; best bid is the last
        self._ask_prices = SortedList()  # ascending; best ask is the first
        self._best_bid: int | None = None
        self._best_ask: int | None = None

    # ------------------------------------------------------------ queries

    def best_bid(self) -> int | None:
        """Highest bid price, None if no bids. Cost: O(1)."""
        return self._best_bid

    def best_ask(self) -> int | None:
        """Lowest ask price, None if no asks. Cost: O(1)."""
        return self._best_ask

    def levels(self, side: Side | str, depth: int | None = None) -> list[tuple[int, int, int]]:
        """``(price, quantity, orders)`` of one side, best first. Cost: O(depth + log n)."""
        if side == Side.BUY:
            prices, book = self._bid_prices, self._bids
            it = (
                reversed(prices)
                if depth is None
                else prices.islice(max(len(prices) - depth, 0), reverse=True)
            )
        else:
            prices, book = self._ask_prices, self._asks
            it = iter(prices) if depth is None else prices.islice(0, depth)
        out = []
        for p in it:
            lv = book[p]
            out.append((p, lv.quantity, lv.count))
        return out

    def level(self, side: Side | str, price: int) -> tuple[int, int]:
        """``(quantity, orders)`` at one price, ``(0, 0)`` if empty. Cost: O(1)."""
        lv = (self._bids if side == Side.BUY else self._asks).get(price)
        return (0, 0) if lv is None else (lv.quantity, lv.count)

    def level_orders(self, side: Side | str, price: int) -> list[Order]:
        """The live orders at one price in FIFO order. Cost: O(queue length)."""
        lv = (self._bids if side == Side.BUY else self._asks).get(price)
        return [] if lv is None else lv.live()

    def iter_orders(self, side: Side | str):
        """Live orders of one side in priority order (best price, then FIFO).

        Cost: O(n) for the whole side; lazy.
        """
        if side == Side.BUY:
            book, prices = self._bids, reversed(self._bid_prices)
        else:
            book, prices = self._asks, iter(self._ask_prices)
        for p in prices:
            for o in book[p].queue:
                if o.status is not _CANCELLED:
                    yield o

    def __len__(self) -> int:
        return len(self.orders)

    # ------------------------------------------------------------ mutation

    def rest(self, order: Order) -> None:
        """Append a resting order at the back of its level (restore, rebuild). Cost: O(log n).

        The order must be OPEN or PARTIAL with a price and remaining > 0, not cross the
        other side, and come after (by sequence) the orders already at its price.
        Raises ValueError otherwise.
        """
        if order.id in self.orders:
            raise ValueError(f"order {order.id} is already resting")
        if order.price is None or order.quantity - order.filled <= 0:
            raise ValueError(f"order {order.id} has no price or nothing remaining")
        if order.status not in _RESTING_STATUSES:
            raise ValueError(f"order {order.id} is {order.status}, not OPEN/PARTIAL")
        if order.side == Side.BUY:
            if self._best_ask is not None and order.price >= self._best_ask:
                raise ValueError(f"bid {order.id} at {order.price} would cross")
            lv = self._bids.get(order.price)
        else:
            if self._best_bid is not None and order.price <= self._best_bid:
                raise ValueError(f"ask {order.id} at {order.price} would cross")
            lv = self._asks.get(order.price)
        if not order.rank:
            order.rank = order.sequence << RANK_SHIFT
        if lv is not None and lv.queue and lv.queue[-1].rank >= order.rank:
            raise ValueError(f"order {order.id} is out of sequence at its level")
        self._rest(order)

    def add_stop(self, order: Order) -> None:
        """File an untriggered stop order in its side's stop book. Cost: O(log n).

        Raises ValueError unless it is UNTRIGGERED with a stop price and something left.
        """
        if order.id in self.stops or order.id in self.orders:
            raise ValueError(f"order {order.id} is already in the book")
        if order.stop_price is None or order.status != Status.UNTRIGGERED:
            raise ValueError(f"order {order.id} is not an untriggered stop")
        if order.quantity - order.filled <= 0:
            raise ValueError(f"order {order.id} has nothing remaining")
        self.stops[order.id] = order
        self._stop_list(order.side).add((order.stop_price, order.sequence, order.id))

    def remove_stop(self, order: Order) -> None:
        """Take a stop out of the stop book (cancel, trigger). Cost: O(log n)."""
        del self.stops[order.id]
        self._stop_list(order.side).remove((order.stop_price, order.sequence, order.id))

    def _stop_list(self, side: Side | str) -> SortedList:
        return self._buy_stops if side == Side.BUY else self._sell_stops

    def triggered_stops(self, low: int, high: int) -> list[Order]:
        """The untriggered stops that a trade price in ``[low, high]`` reaches (BUY: stop
        <= high; SELL: stop >= low), taken out of the stop book. Cost: O(log n + found)."""
        found = []
        for side_list, it in (
            (self._buy_stops, self._buy_stops.irange(maximum=(high, float("inf")))),
            (self._sell_stops, self._sell_stops.irange(minimum=(low,))),
        ):
            keys = list(it)
            for key in keys:
                side_list.remove(key)
                found.append(self.stops.pop(key[2]))
        return found

    def stop_orders(self, side: Side | str) -> list[Order]:
        """Untriggered stops of one side, by stop price then sequence. Cost: O(n)."""
        return [self.stops[k[2]] for k in self._stop_list(side)]

    def _rest(self, order: Order) -> Level:
        """Append to the back of the level, creating it. No checks. Cost: O(1), O(log n)
        when the level is new."""
        price = order.price
        buy = order.side == Side.BUY
        lv = (self._bids if buy else self._asks).get(price)
        if lv is None:
            lv = self._new_level(buy, price)
        lv.queue.append(order)
        lv.quantity += order.quantity - order.filled
        lv.count += 1
        self.orders[order.id] = order
        return lv

    def _new_level(self, buy: bool, price: int) -> Level:
        """Create an empty level and refresh the cached best. Cost: O(log n)."""
        if buy:
            lv = self._bids[price] = Level(Side.BUY, price)
            self._bid_prices.add(price)
            if self._best_bid is None or price > self._best_bid:
                self._best_bid = price
        else:
            lv = self._asks[price] = Level(Side.SELL, price)
            self._ask_prices.add(price)
            if self._best_ask is None or price < self._best_ask:
                self._best_ask = price
        return lv

    def _drop_level(self, lv: Level) -> None:
        """Remove an empty level and refresh the cached best. Cost: O(log n)."""
        price = lv.price
        if lv.side == Side.BUY:
            del self._bids[price]
            prices = self._bid_prices
            prices.remove(price)
            if price == self._best_bid:
                self._best_bid = prices[-1] if prices else None
        else:
            del self._asks[price]
            prices = self._ask_prices
            prices.remove(price)
            if price == self._best_ask:
                self._best_ask = prices[0] if prices else None

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able plain dict of the whole book. Cost: O(n).

        ``orders`` lists the resting orders in priority order: bids best first, then
        asks best first, FIFO within a level; every Order field, enums as strings.
        """
        orders = [_order_to_dict(o) for o in self.iter_orders(Side.BUY)]
        orders.extend(_order_to_dict(o) for o in self.iter_orders(Side.SELL))
        stops = [_order_to_dict(o) for side in (Side.BUY, Side.SELL)
                 for o in self.stop_orders(side)]
        return {
            "symbol": self.symbol,
            "last_sequence": self.last_sequence,
            "trade_sequence": self.trade_sequence,
            "last_price": self.last_price,
            "orders": orders,
            "stops": stops,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any]) -> OrderBook:
        """Rebuild a book from ``snapshot()`` output. Cost: O(n log n)."""
        book = cls(snapshot["symbol"])
        book.last_sequence = int(snapshot["last_sequence"])
        book.trade_sequence = int(snapshot["trade_sequence"])
        last = snapshot.get("last_price")
        book.last_price = None if last is None else int(last)
        for d in snapshot["orders"]:
            book.rest(_order_from_dict(d))
        for d in snapshot.get("stops", ()):
            book.add_stop(_order_from_dict(d))
        return book

    # ------------------------------------------------------------ invariants

    def check(self) -> None:
        """Raise AssertionError naming the first broken invariant. Cost: O(n log n)."""
        seen: set[str] = set()
        for side, book, prices in (
            (Side.BUY, self._bids, self._bid_prices),
            (Side.SELL, self._asks, self._ask_prices),
        ):
            assert list(prices) == sorted(book), f"{side}: price index != level dict"
            best = (prices[-1] if side == Side.BUY else prices[0]) if prices else None
            cached = self._best_bid if side == Side.BUY else self._best_ask
            assert cached == best, f"{side}: cached best {cached} != {best}"
            for price, lv in book.items():
                assert lv.price == price and lv.side == side, f"{side} {price}: level mislabelled"
                live = lv.live()
                assert live, f"{side} {price}: empty level kept in the book"
                assert lv.queue[0].status is not _CANCELLED, f"{side} {price}: garbage at head"
                assert lv.count == len(live), f"{side} {price}: count {lv.count} != {len(live)}"
                total = sum(o.quantity - o.filled for o in live)
                assert lv.quantity == total, f"{side} {price}: quantity {lv.quantity} != {total}"
                prev = None
                for o in live:
                    assert o.side == side and o.price == price, f"{o.id}: in the wrong level"
                    assert o.status in _RESTING_STATUSES, f"{o.id}: resting with {o.status}"
                    assert o.quantity - o.filled > 0, f"{o.id}: resting with nothing remaining"
                    assert o.filled >= 0, f"{o.id}: negative filled"
                    assert (o.status == Status.OPEN) == (o.filled == 0), f"{o.id}: OPEN vs filled"
                    assert self.orders.get(o.id) is o, f"{o.id}: not in the index"
                    assert o.id not in seen, f"{o.id}: rests twice"
                    seen.add(o.id)
                    assert prev is None or prev < o.rank, f"{o.id}: FIFO broken at {price}"
                    prev = o.rank
        assert len(seen) == len(self.orders), "index holds orders that are not in a level"
        listed = 0
        for side in (Side.BUY, Side.SELL):
            for o in self.stop_orders(side):
                listed += 1
                assert o.side == side, f"{o.id}: stop filed on the wrong side"
                assert o.status == Status.UNTRIGGERED, f"{o.id}: stop book holds {o.status}"
                assert o.id not in self.orders, f"{o.id}: both a stop and resting"
                assert o.quantity - o.filled > 0, f"{o.id}: stop with nothing remaining"
                last = self.last_price
                if last is not None:  # an untriggered stop's condition cannot hold
                    assert (last < o.stop_price if side == Side.BUY
                            else last > o.stop_price), f"{o.id}: stop should have triggered"
        assert listed == len(self.stops), "stop index and stop books disagree"
        if self._best_bid is not None and self._best_ask is not None:
            assert self._best_bid < self._best_ask, (
                f"book crossed at rest: bid {self._best_bid} >= ask {self._best_ask}"
            )

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, {len(self.orders)} orders, "
            f"bid {self._best_bid}, ask {self._best_ask}, seq {self.last_sequence})"
        )


_ORDER_FIELDS = Order.__dataclass_fields__  # type: ignore[attr-defined]
_ENUM_FIELDS = {
    "side": Side,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "self_trade_prevention": SelfTradePrevention,
    "status": Status,
    "reason": Reason,
}


def _order_to_dict(o: Order) -> dict[str, Any]:
    d = {}
    for name in _ORDER_FIELDS:
        v = getattr(o, name)
        if name in _ENUM_FIELDS and v is not None:
            v = str(v.value) if hasattr(v, "value") else str(v)
        d[name] = v
    return d


def _order_from_dict(d: dict[str, Any]) -> Order:
    kw = {}
    for name in _ORDER_FIELDS:
        if name not in d:
            continue
        v = d[name]
        enum = _ENUM_FIELDS.get(name)
        if enum is not None and v is not None:
            v = enum(v)
        kw[name] = v
    return Order(**kw)
