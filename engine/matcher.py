"""Apply one command to one book and return what happened: the matching rules.

``apply(book, command) -> list[Event]`` is pure and deterministic: the same commands in
the same order give the same events and the same book. No clock, no randomness, no I/O;
``updated_at`` and trade timestamps are the command's ``timestamp``.

Event order for a PlaceOrder (the worker and the REST layer rely on it):
  * postOnly that would cross -> [OrderUpdated(REJECTED, POST_ONLY_WOULD_CROSS)]
  * FOK without enough crossing liquidity -> [OrderUpdated(CANCELLED, FOK_NOT_FILLABLE)]
  * per maker, in priority order: self-trade prevention cancels, or
    TradeExecuted, OrderUpdated(maker), OrderUpdated(taker)
  * the taker's fate: OPEN (rests, nothing filled) / CANCELLED (IOC_REMAINDER,
    NO_LIQUIDITY, SELF_TRADE_PREVENTED); nothing more if it rests after a partial fill
  * one LevelChanged per touched level (one whose totals changed: a fill, a self-trade
    cancel, the taker resting), either side, in order of first touch, with the level's
    final quantity and order count (0/0: the level is gone).

The order-management commands (api.md section 7):
  * CancelOrder / ExpireOrder -> [OrderUpdated(CANCELLED, USER_CANCELLED / EXPIRED),
    LevelChanged] (no LevelChanged for an untriggered stop: it is not in the book)
  * ReduceOrder -> [OrderUpdated(same status, new quantity), LevelChanged], in place
  * CancelAll -> the events of one cancel per order of the account, in sequence order
  * a replace (PlaceOrder with ``replaces_order_id``) -> the original's cancel events,
    then the new order's; or only [OrderUpdated(REJECTED, ORIGINAL_NOT_OPEN)]
  * a stop (STOP_LIMIT / STOP_MARKET) -> [OrderUpdated(UNTRIGGERED)] or
    [OrderUpdated(REJECTED, STOP_WOULD_TRIGGER)]
After any command whose trades reach untriggered stops: the triggered stops wait in one
set; the one with the lowest sequence enters as a taker (LIMIT GTC / MARKET IOC, with the
command's timestamp) and its events follow; stops its trades reach join the set; until
the set is empty (``_run_triggered``).
"""

from __future__ import annotations

from heapq import heappop, heappush

from .book import _GARBAGE_SLACK, OrderBook
from .types import (
    ANONYMOUS,
    RANK_SHIFT,
    CancelAll,
    CancelOrder,
    Event,
    ExpireOrder,
    LevelChanged,
    Order,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    Reason,
    ReduceOrder,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
    TradeExecuted,
)

__all__ = ["apply"]

_BUY = Side.BUY
_GTC = TimeInForce.GTC
_GTD = TimeInForce.GTD
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_STOP_LIMIT = OrderType.STOP_LIMIT
_UNTRIGGERED = Status.UNTRIGGERED
_STP_NONE = SelfTradePrevention.NONE
_CANCEL_MAKER = SelfTradePrevention.CANCEL_MAKER
_CANCEL_TAKER = SelfTradePrevention.CANCEL_TAKER
_PENDING = Status.PENDING
_OPEN = Status.OPEN
_PARTIAL = Status.PARTIAL
_FILLED = Status.FILLED
_CANCELLED = Status.CANCELLED
_REJECTED = Status.REJECTED
_USER_CANCELLED = Reason.USER_CANCELLED
_IOC_REMAINDER = Reason.IOC_REMAINDER
_NO_LIQUIDITY = Reason.NO_LIQUIDITY
_FOK_NOT_FILLABLE = Reason.FOK_NOT_FILLABLE
_POST_ONLY_WOULD_CROSS = Reason.POST_ONLY_WOULD_CROSS
_STP_REASON = Reason.SELF_TRADE_PREVENTED
_EXPIRED = Reason.EXPIRED
_ORIGINAL_NOT_OPEN = Reason.ORIGINAL_NOT_OPEN
_STOP_WOULD_TRIGGER = Reason.STOP_WOULD_TRIGGER


def _fast_constructor(cls):
    """A positional constructor for a frozen slotted dataclass that skips the frozen
    ``__setattr__``: a plain twin class with the same slots fills them with ordinary
    attribute stores, then its ``__init__`` hands the object over to ``cls``.

    The result is an ordinary instance of ``cls`` (same type, equality, hash, repr, still
    frozen); ``test_fast_event_constructors_build_equal_events`` checks it. The swap
    instead of one descriptor ``__set__`` call per field took the ``make bench`` mix
    against the engine before order management from -11.6 % to +0.3 % (deep) and from
    -12.8 % to +7.6 % (shallow): commands/s by CPU time, median of 8 interleaved rounds of
    300k commands (``python -m bench.engine_ab /tmp/engine-old/engine``, see its doc).
    """
    fields = list(cls.__dataclass_fields__)
    args = ", ".join(fields)
    body = "".join(f"    self.{f} = {f}\n" for f in fields)
    src = f"def __init__(self, {args}):\n{body}    self.__class__ = _cls\n"
    namespace = {"_cls": cls}
    exec(src, namespace)  # noqa: S102 - source built above from the dataclass field names
    init = namespace["__init__"]
    # Same slots, same base: CPython lets an instance move to ``cls`` (layouts match).
    twin = type(f"make_{cls.__name__}", (), {"__slots__": tuple(fields), "__init__": init})
    twin.__doc__ = f"Build a {cls.__name__} positionally (fast path, same object)."
    return twin


_Updated = _fast_constructor(OrderUpdated)
_Trade = _fast_constructor(TradeExecuted)
_Level = _fast_constructor(LevelChanged)


def apply(book: OrderBook, command) -> list[Event]:
    """Apply one command; return its events in order. Cost: O(log n + fills + touched levels)
    (CancelAll: O(resting orders)).

    Raises ValueError if ``command.sequence <= book.last_sequence`` (a caller bug: the
    journal hands out strictly increasing sequences) and TypeError for an unknown command;
    in both cases the book is unchanged.
    """
    seq = command.sequence
    if seq <= book.last_sequence:
        raise ValueError(
            f"{book.symbol}: command sequence {seq} <= last applied {book.last_sequence}"
        )
    cls = command.__class__
    if cls is PlaceOrder:
        oid = command.order_id
        stops = book.stops  # read once: the deep run of make bench places 70k of 100k
        # ``stops and``: most books hold no stop; skip that lookup (make bench, deep).
        if oid in book.orders or (stops and oid in stops):
            raise ValueError(f"{book.symbol}: order {oid} is already resting")
        book.last_sequence = seq
        if not stops:  # nothing to trigger (a stop this command files cannot trade)
            return _place(book, command)
        trades_before = book.trade_sequence
        events = _place(book, command)
        if book.trade_sequence != trades_before:
            _run_triggered(book, events, seq, command.timestamp)
        return events
    if cls is CancelOrder:
        events = _remove(book, command.order_id, _USER_CANCELLED, command.timestamp)
    elif cls is ReduceOrder:
        events = _reduce(book, command)
    elif cls is ExpireOrder:
        events = _remove(book, command.order_id, _EXPIRED, command.timestamp)
    elif cls is CancelAll:
        events = _cancel_all(book, command)
    else:
        raise TypeError(f"not a command: {command!r}")
    book.last_sequence = seq  # none of these reads it: set once, after
    return events


def _remove(book: OrderBook, order_id: str, reason: Reason, ts: int) -> list[Event]:
    """Cancel a resting order or an untriggered stop; anything else is a no-op.
    Cost: O(1) amortised, O(log n) when the level empties or for a stop.

    Lazy deletion: the order is marked CANCELLED and the level totals fixed; it leaves
    the queue now only if it is at either end, otherwise when it reaches the head or
    when the queue is compacted (garbage > live orders + slack).
    """
    order = book.orders.pop(order_id, None)
    if order is None:
        if not book.stops:  # most books hold no stop: a missed cancel ends here (make bench)
            return []
        order = book.stops.get(order_id)
        if order is None:
            return []
        book.remove_stop(order)
        order.status = _CANCELLED
        order.reason = reason
        order.updated_at = ts
        return [_Updated(order, _CANCELLED, reason, order.filled, order.notional, ts,
                         order.quantity)]
    order.status = _CANCELLED
    order.reason = reason
    order.updated_at = ts
    lv = (book._bids if order.side == _BUY else book._asks)[order.price]
    qty = lv.quantity = lv.quantity - (order.quantity - order.filled)
    count = lv.count = lv.count - 1
    q = lv.queue
    if not count:
        q.clear()
        book._drop_level(lv)
    elif q[0] is order:
        q.popleft()
        while q[0].status is _CANCELLED:
            q.popleft()
    elif q[-1] is order:
        q.pop()
        while q[-1].status is _CANCELLED:
            q.pop()
    elif len(q) > 2 * count + _GARBAGE_SLACK:
        lv.compact()
    return [
        _Updated(order, _CANCELLED, reason, order.filled, order.notional, ts, order.quantity),
        _Level(lv.side, lv.price, qty, count),
    ]


def _reduce(book: OrderBook, cmd: ReduceOrder) -> list[Event]:
    """Lower a resting or untriggered order's total quantity in place (its queue position
    is untouched); down to or below what already filled cancels the rest. Cost: O(1)."""
    order = book.orders.get(cmd.order_id) or book.stops.get(cmd.order_id)
    new_qty = cmd.quantity
    if order is None or new_qty >= order.quantity:
        return []  # unknown, final, or not a reduction any more (an earlier reduce won)
    ts = cmd.timestamp
    if new_qty <= order.filled:
        return _remove(book, order.id, _USER_CANCELLED, ts)
    cut = order.quantity - new_qty
    order.quantity = new_qty
    order.updated_at = ts
    update = _Updated(order, order.status, None, order.filled, order.notional, ts, new_qty)
    if order.status is _UNTRIGGERED:
        return [update]
    lv = (book._bids if order.side == _BUY else book._asks)[order.price]
    lv.quantity -= cut
    return [update, _Level(lv.side, lv.price, lv.quantity, lv.count)]


def _cancel_all(book: OrderBook, cmd: CancelAll) -> list[Event]:
    """Cancel every resting order and untriggered stop of one account, by sequence."""
    acct = cmd.account_id
    mine = [o for o in book.orders.values() if o.account_id == acct]
    mine.extend(o for o in book.stops.values() if o.account_id == acct)
    mine.sort(key=_by_sequence)
    events: list[Event] = []
    for o in mine:
        events.extend(_remove(book, o.id, _USER_CANCELLED, cmd.timestamp))
    return events


def _by_sequence(o: Order) -> int:
    return o.sequence


def _run_triggered(book: OrderBook, events: list[Event], seq: int, ts: int) -> None:
    """Trigger the stops that the trades in ``events`` reached and run them as takers, the
    lowest sequence first, until no stop is left triggered. Appends to ``events``.

    The k-th stop to enter ranks ``(seq << RANK_SHIFT) + k``: if it rests it queues behind
    every order already at its price.
    """
    waiting: list[tuple[int, Order]] = []  # (sequence, order): a heap
    start, k = 0, 0
    while True:
        low = high = None
        for i in range(start, len(events)):
            e = events[i]
            if e.__class__ is TradeExecuted:
                p = e.price
                if low is None or p < low:
                    low = p
                if high is None or p > high:
                    high = p
        if low is not None and book.stops:
            for stop in book.triggered_stops(low, high):
                heappush(waiting, (stop.sequence, stop))
        if not waiting:
            return
        _, stop = heappop(waiting)
        k += 1
        stop.rank = (seq << RANK_SHIFT) + k
        stop.updated_at = ts
        start = len(events)
        if stop.order_type == _STOP_LIMIT:
            events.extend(_match(book, stop, stop.price, _GTC, ts))
        else:
            events.extend(_match(book, stop, None, _IOC, ts))


def _fok_fillable(book: OrderBook, taker: Order, price: int | None, stp_on: bool) -> bool:
    """True if the liquidity crossing ``price`` (None: any) covers the taker's quantity.

    With self-trade prevention active, same-account makers do not count; for
    CANCEL_TAKER/CANCEL_BOTH the count stops at the first one. Cost: O(levels walked),
    O(orders walked) with self-trade prevention.
    """
    need = taker.quantity
    if taker.side == _BUY:
        levels = book._asks
        prices = book._ask_prices
        it = iter(prices) if price is None else prices.irange(maximum=price)
    else:
        levels = book._bids
        prices = book._bid_prices
        it = reversed(prices) if price is None else prices.irange(minimum=price, reverse=True)
    avail = 0
    if not stp_on:
        for p in it:
            avail += levels[p].quantity
            if avail >= need:
                return True
        return False
    acct = taker.account_id
    skip_self = taker.self_trade_prevention == _CANCEL_MAKER
    for p in it:
        for o in levels[p].queue:
            if o.status is _CANCELLED:
                continue
            if o.account_id == acct:
                if skip_self:
                    continue
                return False
            avail += o.quantity - o.filled
            if avail >= need:
                return True
    return False


def _place(book: OrderBook, cmd: PlaceOrder) -> list[Event]:
    """A new order: a replace first cancels its original (or is rejected alone if that is
    no longer resting or untriggered); a stop waits (or is rejected), anything else
    matches.

    The taker is built here and the replace is folded in, not in helpers (with apply's
    no-stops shortcut): the deep run of ``make bench`` (``python -m bench.engine_bench``)
    went from 184k to 190k commands/s by CPU time (211k before the order-management
    commands; median of 8 interleaved runs of 300k commands, both engines in one process).
    Resting a non-crossing GTC limit here too (fix-engine, same script, load 1.1-1.5):
    225k vs 261k before order management (-13.6 %, 6 runs) -> 218k vs 249k (-12.4 %,
    8 runs; one 6-run pass gave -9.6 %). Still short of the -7 % goal.
    """
    ts = cmd.timestamp
    seq = cmd.sequence  # each field read once (make bench, deep run: 70k places)
    original = cmd.replaces_order_id
    taker = Order(
        cmd.order_id, cmd.side, cmd.order_type, cmd.time_in_force, cmd.price, cmd.quantity,
        seq, ts, cmd.account_id, cmd.post_only, cmd.self_trade_prevention,
        cmd.client_order_id, cmd.stop_price, cmd.expire_time, original,
        seq << RANK_SHIFT, 0, 0, _PENDING, None, ts,
    )  # fmt: skip
    cancelled = None
    if original is not None:
        if original not in book.orders and original not in book.stops:
            return _finish(taker, _REJECTED, _ORIGINAL_NOT_OPEN, ts)
        cancelled = _remove(book, original, _USER_CANCELLED, ts)
    otype = cmd.order_type
    tif = cmd.time_in_force
    if otype == _LIMIT:
        if tif == _GTD:
            tif = _GTC
        price = cmd.price
        if tif == _GTC and price is not None and cancelled is None:
            # A GTC limit that does not cross rests here, without the call into _match
            # (its first branch, same events): the deep run of ``make bench``
            # (``python -m bench.engine_bench``; ``python -m bench.engine_ab OLD_ENGINE_DIR``)
            # is 57 % GTC limits, most of them resting.
            if taker.side == _BUY:
                best = book._best_ask
                rests = best is None or best > price
                levels = book._bids
            else:
                best = book._best_bid
                rests = best is None or best < price
                levels = book._asks
            if rests:
                taker.status = _OPEN
                lv = levels.get(price)
                if lv is None:
                    lv = book._new_level(levels is book._bids, price)
                lv.queue.append(taker)
                qty = cmd.quantity
                lv_qty = lv.quantity = lv.quantity + qty
                lv_count = lv.count = lv.count + 1
                book.orders[cmd.order_id] = taker
                return [
                    _Updated(taker, _OPEN, None, 0, 0, ts, qty),
                    _Level(lv.side, price, lv_qty, lv_count),
                ]
        events = _match(book, taker, price, tif, ts)
    elif otype == _MARKET:
        events = _match(book, taker, None, tif, ts)
    else:
        events = _file_stop(book, taker, ts)
    if cancelled is None:
        return events
    cancelled.extend(events)
    return cancelled


def _file_stop(book: OrderBook, taker: Order, ts: int) -> list[Event]:
    """A new stop order waits UNTRIGGERED, or is rejected if its condition holds already."""
    last = book.last_price
    stop = taker.stop_price
    if last is not None and (last >= stop if taker.side == _BUY else last <= stop):
        return _finish(taker, _REJECTED, _STOP_WOULD_TRIGGER, ts)
    taker.status = _UNTRIGGERED
    book.add_stop(taker)
    return [_Updated(taker, _UNTRIGGERED, None, 0, 0, ts, taker.quantity)]


def _match(book: OrderBook, taker: Order, price: int | None, tif: TimeInForce,
           ts: int) -> list[Event]:
    """Match an incoming taker at ``price`` (None: MARKET) with ``tif`` (GTC rests the
    remainder), then rest or cancel its remainder. See the module doc."""
    side = taker.side
    qty = taker.quantity
    acct = taker.account_id
    stp = taker.self_trade_prevention
    taker_id = taker.id
    buy = side == _BUY
    if buy:
        best = book._best_ask
        crosses = best is not None and (price is None or best <= price)
    else:
        best = book._best_bid
        crosses = best is not None and (price is None or best >= price)

    if not crosses:
        # Nothing to match (the common case for a GTC limit): rest or cancel right away.
        if tif == _GTC:
            if price is None:  # MARKET GTC is invalid upstream; never rest without a price
                return _finish(taker, _CANCELLED,
                               _NO_LIQUIDITY if best is None else _IOC_REMAINDER, ts)
            taker.status = _OPEN
            lv = (book._bids if buy else book._asks).get(price)
            if lv is None:
                lv = book._new_level(buy, price)
            lv.queue.append(taker)
            lv_qty = lv.quantity = lv.quantity + qty
            lv_count = lv.count = lv.count + 1
            book.orders[taker_id] = taker
            return [
                _Updated(taker, _OPEN, None, 0, 0, ts, qty),
                _Level(lv.side, price, lv_qty, lv_count),
            ]
        if tif == _FOK:
            return _finish(taker, _CANCELLED, _FOK_NOT_FILLABLE, ts)
        return _finish(taker, _CANCELLED, _NO_LIQUIDITY if best is None else _IOC_REMAINDER, ts)

    if taker.post_only:
        return _finish(taker, _REJECTED, _POST_ONLY_WOULD_CROSS, ts)

    stp_on = stp != _STP_NONE and acct != ANONYMOUS
    if tif == _FOK and not _fok_fillable(book, taker, price, stp_on):
        return _finish(taker, _CANCELLED, _FOK_NOT_FILLABLE, ts)

    # ---------------------------------------------------------------- matching loop
    if buy:
        levels = book._asks
    else:
        levels = book._bids
    events: list[Event] = []
    append = events.append
    touched = []
    remaining = qty
    filled = 0
    notional = 0
    trade_seq = book.trade_sequence
    orders = book.orders
    stp_cancel = False
    while True:
        lv = levels[best]
        q = lv.queue
        lv_qty = lv.quantity
        lv_count = lv.count
        while True:
            maker = q[0]
            if stp_on and maker.account_id == acct:
                if stp != _CANCEL_TAKER:  # CANCEL_MAKER or CANCEL_BOTH: the maker goes
                    q.popleft()
                    del orders[maker.id]
                    lv_qty -= maker.quantity - maker.filled
                    lv_count -= 1
                    maker.status = _CANCELLED
                    maker.reason = _STP_REASON
                    maker.updated_at = ts
                    append(_Updated(maker, _CANCELLED, _STP_REASON, maker.filled,
                                    maker.notional, ts, maker.quantity))
                    if lv_count:
                        while q[0].status is _CANCELLED:
                            q.popleft()
                    if stp == _CANCEL_MAKER:
                        if lv_count:
                            continue
                        break
                stp_cancel = True  # CANCEL_TAKER or CANCEL_BOTH: the taker goes
                break
            m_rem = maker.quantity - maker.filled
            fill = m_rem if m_rem < remaining else remaining
            trade_seq += 1
            value = best * fill
            last_price = best
            append(_Trade(trade_seq, best, fill, maker.id, taker_id, side, ts))
            maker.filled += fill
            maker.notional += value
            maker.updated_at = ts
            if fill == m_rem:
                maker.status = _FILLED
                q.popleft()
                del orders[maker.id]
                lv_count -= 1
                if lv_count:
                    while q[0].status is _CANCELLED:
                        q.popleft()
            else:
                maker.status = _PARTIAL
            append(_Updated(maker, maker.status, None, maker.filled, maker.notional, ts,
                            maker.quantity))
            lv_qty -= fill
            remaining -= fill
            filled += fill
            notional += value
            if remaining:
                taker.status = _PARTIAL
                append(_Updated(taker, _PARTIAL, None, filled, notional, ts, qty))
                if lv_count:
                    continue
            else:
                taker.status = _FILLED
                append(_Updated(taker, _FILLED, None, filled, notional, ts, qty))
            break
        if lv_qty != lv.quantity:  # touched: something filled or was cancelled here
            touched.append(lv)
            lv.quantity = lv_qty
            lv.count = lv_count
        if not lv_count:
            q.clear()
            book._drop_level(lv)
        if stp_cancel or not remaining:
            break
        best = book._best_ask if buy else book._best_bid
        if best is None or (price is not None and (best > price if buy else best < price)):
            break

    if trade_seq != book.trade_sequence:
        book.last_price = last_price
    book.trade_sequence = trade_seq
    taker.filled = filled
    taker.notional = notional
    # ---------------------------------------------------------------- the remainder
    if remaining:
        if stp_cancel:
            reason = _STP_REASON
        elif tif == _GTC and price is not None:
            if not filled:
                taker.status = _OPEN
                append(_Updated(taker, _OPEN, None, 0, 0, ts, qty))
            touched.append(book._rest(taker))
            reason = None
        else:
            reason = _IOC_REMAINDER  # the opposite side was not empty: we matched
        if reason is not None:
            taker.status = _CANCELLED
            taker.reason = reason
            append(_Updated(taker, _CANCELLED, reason, filled, notional, ts, qty))
    for lv in touched:
        append(_Level(lv.side, lv.price, lv.quantity, lv.count))
    return events


def _finish(taker: Order, status: Status, reason: Reason, ts: int) -> list[Event]:
    """Cancel or reject a taker that never touched the book. Cost: O(1)."""
    taker.status = status
    taker.reason = reason
    taker.updated_at = ts
    return [_Updated(taker, status, reason, taker.filled, taker.notional, ts, taker.quantity)]
