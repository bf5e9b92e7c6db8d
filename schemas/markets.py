"""Markets and exact numbers: decimals on the wire, integer ticks and lots inside.

A price on the wire is ``ticks * tickSize``; a quantity is ``lots * lotSize``. Input
must be an exact multiple (``0.30000000000000004`` is not a multiple of 0.01).
Output numbers are floats built by one correctly-rounded division of exact
integers, so their shortest repr is exactly the decimal at the market's
precision (``101.25``, never ``101.25000000001``) for up to 15 significant digits,
which the configured maxima keep us under.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Decimal,
    InvalidOperation,
)
from fractions import Fraction

from settings import MarketConfig, Settings


class UnknownMarket(LookupError):
    pass


@dataclass(frozen=True)
class Market:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    max_price: Decimal
    max_quantity: Decimal

    @classmethod
    def from_config(cls, config: MarketConfig) -> Market:
        return cls(config.symbol, config.tick_size, config.lot_size,
                   config.max_price, config.max_quantity)

    # ---- wire -> integers
    def to_ticks(self, value: Decimal) -> int:
        """Ticks for an exact multiple of tickSize within (0, maxPrice]; ValueError otherwise."""
        return _to_units(value, self.tick_size, self.max_price, "tickSize")

    def to_lots(self, value: Decimal) -> int:
        return _to_units(value, self.lot_size, self.max_quantity, "lotSize")

    # ---- integers -> wire
    def price(self, ticks: int | None) -> float | None:
        return None if ticks is None else ticks * self._tick_n / self._tick_d

    def quantity(self, lots: int) -> float:
        return lots * self._lot_n / self._lot_d

    def average_price(self, notional: int, filled: int) -> float | None:
        """Volume-weighted price, rounded half-even to tick precision plus 4 decimals."""
        if not filled:
            return None
        exact = Decimal(notional) * self.tick_size / Decimal(filled)
        return float(exact.quantize(self._average_places, rounding=ROUND_HALF_EVEN))

    def __post_init__(self):
        # Cached as fractions: the hot path formats every order and trade. price() and
        # quantity() are _scaled() with the fraction's two integers held as plain ints
        # (Fraction.numerator is a property): the same one division, 0.15 -> 0.04 us;
        # with the average's quantum made once, order_json 3.2 -> ~2.1 us, ~2 of them per
        # order in the matcher (``/tmp`` micro-loops; ``bench.load --mode batch``, README).
        object.__setattr__(self, "_tick", Fraction(self.tick_size))
        object.__setattr__(self, "_lot", Fraction(self.lot_size))
        for name, step in (("_tick", self._tick), ("_lot", self._lot)):
            object.__setattr__(self, f"{name}_n", step.numerator)
            object.__setattr__(self, f"{name}_d", step.denominator)
        object.__setattr__(self, "_average_places",
                           Decimal(1).scaleb(self.tick_size.as_tuple().exponent - 4))

    def describe(self) -> dict:
        return {"symbol": self.symbol, "tickSize": float(self.tick_size),
                "lotSize": float(self.lot_size), "maxPrice": float(self.max_price),
                "maxQuantity": float(self.max_quantity)}


def _to_units(value: Decimal, step: Decimal, maximum: Decimal, step_name: str) -> int:
    try:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        if value <= 0:
            raise ValueError("must be greater than 0")
        if value > maximum:
            raise ValueError(f"must be at most {maximum}")
        units, rest = divmod(value, step)
    except InvalidOperation as exc:
        raise ValueError("is not a valid number") from exc
    if rest != 0:
        raise ValueError(f"must be a multiple of the market's {step_name} {step}")
    return int(units)


def _scaled(units: int, step: Fraction) -> float:
    # One correctly rounded division: the float nearest the exact decimal.
    return units * step.numerator / step.denominator


def markets(settings: Settings) -> dict[str, Market]:
    """The configured markets by symbol. Built on each call (5.6 us for two markets):
    whoever looks markets up per request keeps the table (the web app in
    ``app.extensions["markets"]``, the place schema on itself)."""
    return {m.symbol: Market.from_config(m) for m in settings.markets}


def get_market(settings: Settings, symbol: str | None,
               table: dict[str, Market] | None = None) -> Market:
    """The market for ``symbol`` (the first configured market when None); ``table``: the
    caller's own ``markets(settings)``, if it keeps one."""
    table = markets(settings) if table is None else table
    if symbol is None:
        return next(iter(table.values()))
    try:
        return table[symbol]
    except KeyError:
        raise UnknownMarket(symbol) from None
