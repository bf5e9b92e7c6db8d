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


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class Status(StrEnum):
    PENDING = "PENDING"
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


@dataclass(slots=True, frozen=True)
class CancelOrder:
    """Cancel a resting order. Unknown or already-final orders: no effect, no event."""

    sequence: int
    timestamp: int
    order_id: str


Command = PlaceOrder | CancelOrder


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
