"""The matching core: pure, deterministic, no I/O. ``apply(book, command) -> events``."""

from .book import OrderBook
from .matcher import apply
from .types import (
    ANONYMOUS,
    FINAL_STATUSES,
    CancelOrder,
    Command,
    Event,
    LevelChanged,
    Order,
    OrderType,
    OrderUpdated,
    PlaceOrder,
    Reason,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
    TradeExecuted,
)

__all__ = [
    "ANONYMOUS",
    "FINAL_STATUSES",
    "CancelOrder",
    "Command",
    "Event",
    "LevelChanged",
    "Order",
    "OrderBook",
    "OrderType",
    "OrderUpdated",
    "PlaceOrder",
    "Reason",
    "SelfTradePrevention",
    "Side",
    "Status",
    "TimeInForce",
    "TradeExecuted",
    "apply",
]
