"""Hypothesis fuzz of the decimal parsing: ExactDecimal and Market.to_ticks / to_lots.

Whatever arrives (numbers, decimal strings, garbage, floats a caller parsed), the field
yields an exact ``Decimal`` or a ValidationError; the market turns it into an integer
count of ticks/lots that is an exact multiple, or a ValueError. Never a float, never
any other exception.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from schemas.markets import Market
from schemas.orders import ExactDecimal

MARKETS = [
    Market("BTC-USD", Decimal("0.01"), Decimal("0.001"), Decimal("10000000"),
           Decimal("1000000")),
    Market("ETH-USD", Decimal("0.01"), Decimal("0.01"), Decimal("10000000"),
           Decimal("1000000")),
    Market("ODD", Decimal("0.05"), Decimal("25"), Decimal("1000"), Decimal("1000000")),
]


class _One(Schema):
    x = ExactDecimal(required=True)


decimal_text = st.from_regex(r"\A-?[0-9]{0,25}(\.[0-9]{0,25})?([eE][-+]?[0-9]{1,4})?\Z")
number_text = st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{1,25})?([eE][-+]?[0-9]{1,4})?\Z")
anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True), st.text(max_size=40), decimal_text,
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
)
fuzz = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(anything)
@example("0.30000000000000004")
@example("1e999999999")
@example("1_000")
@example(" 1.5 ")
@example("NaN")
@example("-0")
@example(Decimal("sNaN"))
@example(float("inf"))
@example(0.1 + 0.2)
@example(10**400)
def test_exact_decimal_is_a_decimal_or_a_validation_error(value):
    try:
        out = _One().load({"x": value})["x"]
    except ValidationError:
        return
    assert isinstance(out, Decimal) and not isinstance(out, float)
    assert out.is_finite()
    if isinstance(value, str):
        assert out == Decimal(value.strip())  # exactly what was written
    elif isinstance(value, float):
        assert out == Decimal(repr(value))  # the shortest repr, not the binary value


@fuzz
@given(st.sampled_from(MARKETS),
       st.one_of(st.decimals(allow_nan=True, allow_infinity=True), number_text.map(Decimal)))
@example(MARKETS[0], Decimal("0.30000000000000004"))
@example(MARKETS[0], Decimal("1E-999999"))
@example(MARKETS[0], Decimal("1E+999999"))
@example(MARKETS[0], Decimal("10000000.00"))
@example(MARKETS[0], Decimal("10000000.01"))
@example(MARKETS[0], Decimal("-0.01"))
@example(MARKETS[2], Decimal("0.15"))
def test_to_units_is_exact_or_value_error(market, value):
    for convert, step, maximum in ((market.to_ticks, market.tick_size, market.max_price),
                                   (market.to_lots, market.lot_size, market.max_quantity)):
        try:
            units = convert(value)
        except ValueError:
            if value.is_finite() and 0 < value <= maximum:
                # Rejected only when it is not a multiple of the step.
                assert value % step != 0
            continue
        assert type(units) is int and units > 0
        assert units * step == value  # an exact multiple, nothing rounded
        assert value <= maximum


@pytest.mark.parametrize("market", MARKETS, ids=lambda m: m.symbol)
@settings(max_examples=150, deadline=None)
@given(units=st.integers(min_value=1, max_value=10**9))
def test_units_round_trip_through_the_wire(market, units):
    """Integers -> wire float -> the decimal a client reads back -> the same integers."""
    price = market.price(units)
    if Decimal(units) * market.tick_size <= market.max_price:
        assert market.to_ticks(Decimal(repr(price))) == units
    qty = market.quantity(units)
    if Decimal(units) * market.lot_size <= market.max_quantity:
        assert market.to_lots(Decimal(repr(qty))) == units
