"""The vocabulary of the matching core: commands in, events out.

Integers only: prices are in ticks, quantities in lots. No JSON, no Redis, no clock.
Commands are imperative (``PlaceOrder``, ``CancelOrder``); events are past tense
(``OrderUpdated``, ``TradeExecuted``, ``LevelChanged``). Outcomes are values
(``Status`` and ``Reason``), never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ANONYMOUS = "anonymous"
# Queue priority inside a price level. A plain order ranks ``sequence << RANK_SHIFT``; a
# triggered stop ranks ``(trigger command's sequence << RANK_SHIFT) + k`` for the k-th stop
# that command triggered, so it queues behind every order already at its price.
RANK_SHIFT = 20


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LIMIT = "STOP_LIMIT"  # waits UNTRIGGERED, then enters as a GTC LIMIT
    STOP_MARKET = "STOP_MARKET"  # waits UNTRIGGERED, then enters as an IOC MARKET


STOP_TYPES = frozenset({OrderType.STOP_LIMIT, OrderType.STOP_MARKET})


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTD = "GTD"  # rests like GTC until an ExpireOrder command (journaled by the worker)


class Status(StrEnum):
    PENDING = "PENDING"
    UNTRIGGERED = "UNTRIGGERED"  # a stop order waiting for its stop price
    OPEN = "OPEN"
    PARTIAL = "PARTIAL"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


FINAL_STATUSES = frozenset({Status.FILLED, Status.CANCELLED, Status.REJECTED})


class Reason(StrEnum):
    USER_CANCELLED = "USER_CANCELLED"
    IOC_REMAINDER = "IOC_REMAINDER"
    NO_LIQUIDITY = "NO_LIQUIDITY"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    SELF_TRADE_PREVENTED = "SELF_TRADE_PREVENTED"
    ORIGINAL_NOT_OPEN = "ORIGINAL_NOT_OPEN"  # a replace whose original was already final
    STOP_WOULD_TRIGGER = "STOP_WOULD_TRIGGER"  # a stop whose condition held on arrival
    EXPIRED = "EXPIRED"  # a GTD order past its expireTime


class SelfTradePrevention(StrEnum):
    NONE = "NONE"
    CANCEL_TAKER = "CANCEL_TAKER"
    CANCEL_MAKER = "CANCEL_MAKER"
    CANCEL_BOTH = "CANCEL_BOTH"


# ---------------------------------------------------------------- commands


@dataclass(slots=True, frozen=True)
class PlaceOrder:
    """Place a new order. ``sequence`` and ``timestamp`` come from the journal."""

    sequence: int
    timestamp: int  # ms since epoch, given by the caller (the engine has no clock)
    order_id: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int | None  # ticks; None for MARKET
    quantity: int  # lots, > 0
    account_id: str = ANONYMOUS
    post_only: bool = False
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.NONE
    client_order_id: str | None = None
    stop_price: int | None = None  # ticks; STOP_LIMIT / STOP_MARKET only
    expire_time: int | None = None  # ms; GTD only (carried for the order's JSON)
    replaces_order_id: str | None = None  # a replace: cancel this one first (same command)


@dataclass(slots=True, frozen=True)
class CancelOrder:
    """Cancel a resting order. Unknown or already-final orders: no effect, no event."""

    sequence: int
    timestamp: int
    order_id: str


@dataclass(slots=True, frozen=True)
class ExpireOrder:
    """Cancel a GTD order with reason EXPIRED (journaled by the worker's clock, not the
    engine's: the engine has none). Unknown or final orders: no effect, no event."""

    sequence: int
    timestamp: int
    order_id: str


@dataclass(slots=True, frozen=True)
class ReduceOrder:
    """Reduce a resting or untriggered order to the new total ``quantity`` (lots), keeping
    its place in the queue; ``quantity <= filled`` cancels the rest. A reduce that would
    not lower the quantity, or that reaches an unknown or final order, changes nothing."""

    sequence: int
    timestamp: int
    order_id: str
    quantity: int


@dataclass(slots=True, frozen=True)
class CancelAll:
    """Cancel every resting and untriggered order of one account, in sequence order."""

    sequence: int
    timestamp: int
    account_id: str


Command = PlaceOrder | CancelOrder | ExpireOrder | ReduceOrder | CancelAll


# ---------------------------------------------------------------- state


@dataclass(slots=True)
class Order:
    """A live order inside the engine. Static fields never change; the rest do."""

    id: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int | None
    quantity: int
    sequence: int
    timestamp: int
    account_id: str = ANONYMOUS
    post_only: bool = False
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.NONE
    client_order_id: str | None = None
    stop_price: int | None = None
    expire_time: int | None = None
    replaces_order_id: str | None = None
    rank: int = 0  # place in its price queue: sequence << RANK_SHIFT, see below
    filled: int = 0
    notional: int = 0  # sum of price * quantity over fills (ticks * lots): the average price
    status: Status = Status.PENDING
    reason: Reason | None = None
    updated_at: int = 0

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


# ---------------------------------------------------------------- events


@dataclass(slots=True, frozen=True)
class OrderUpdated:
    """An order changed: it rested, took a fill, was cancelled or rejected.

    ``order`` is the live object (for its static fields, which never change); the
    dynamic fields are copied here because the object keeps changing afterwards.
    """

    order: Order
    status: Status
    reason: Reason | None
    filled: int
    notional: int
    updated_at: int
    quantity: int  # the order's total quantity then (a reduce lowers it)


@dataclass(slots=True, frozen=True)
class TradeExecuted:
    """A fill between a resting maker and an incoming taker, at the maker's price."""

    sequence: int  # per-symbol trade sequence: strictly increasing, gap-free, from 1
    price: int
    quantity: int
    maker_order_id: str
    taker_order_id: str
    taker_side: Side
    timestamp: int

    @property
    def buy_order_id(self) -> str:
        return self.taker_order_id if self.taker_side is Side.BUY else self.maker_order_id

    @property
    def sell_order_id(self) -> str:
        return self.maker_order_id if self.taker_side is Side.BUY else self.taker_order_id


@dataclass(slots=True, frozen=True)
class LevelChanged:
    """A price level's new totals after a command (quantity 0: the level is gone)."""

    side: Side
    price: int
    quantity: int
    orders: int


Event = OrderUpdated | TradeExecuted | LevelChanged

# What ``engine`` re-exports: the commands, the events and their enums.
__all__ = ["ANONYMOUS", "FINAL_STATUSES", "RANK_SHIFT", "STOP_TYPES", "CancelAll", "CancelOrder",
           "Command", "Event", "ExpireOrder", "LevelChanged", "Order", "OrderType", "OrderUpdated",
           "PlaceOrder", "Reason", "ReduceOrder", "SelfTradePrevention", "Side", "Status",
           "TimeInForce", "TradeExecuted"]
