"""The matching core: pure, deterministic, no I/O. ``apply(book, command) -> events``."""

from . import types
from .book import OrderBook
from .matcher import apply
from .types import *  # noqa: F403 (the commands, events and enums: engine.types.__all__)

__all__ = ["OrderBook", "apply", *types.__all__]
