"""Exact numbers: decimals in, integers inside, exact decimals out."""

from decimal import Decimal

import pytest

from schemas.markets import UnknownMarket, get_market
from settings import Settings, load_settings

BTC = get_market(Settings(), "BTC-USD")


def test_the_first_market_is_the_default():
    assert get_market(Settings(), None).symbol == "BTC-USD"


def test_unknown_symbol_is_an_error():
    with pytest.raises(UnknownMarket):
        get_market(Settings(), "DOGE-USD")


@pytest.mark.parametrize("text,ticks", [("101.25", 10125), ("0.01", 1), ("10000000", 10**9)])
def test_prices_become_ticks(text, ticks):
    assert BTC.to_ticks(Decimal(text)) == ticks


@pytest.mark.parametrize("text", ["0.30000000000000004", "101.255", "0", "-1", "10000000.01",
                                  "NaN", "Infinity"])
def test_bad_prices_are_refused(text):
    with pytest.raises(ValueError):
        BTC.to_ticks(Decimal(text))


def test_output_numbers_are_written_exactly_at_market_precision():
    assert repr(BTC.price(10125)) == "101.25"
    assert repr(BTC.quantity(1)) == "0.001"
    assert repr(BTC.price(10**9)) == "10000000.0"
    for ticks in range(1, 100_000, 7):
        assert Decimal(repr(BTC.price(ticks))) == ticks * BTC.tick_size


def test_average_price_rounds_half_even_to_tick_precision_plus_four():
    # (101.25 * 1 + 101.26 * 2) / 3 = 101.25666... -> 101.256667
    assert BTC.average_price(10125 + 2 * 10126, 3) == 101.256667
    assert BTC.average_price(0, 0) is None


def test_markets_are_configurable_by_env():
    s = load_settings({"MARKETS": '[{"symbol":"SOL-USD","tickSize":"0.001","lotSize":"0.1"}]'})
    sol = get_market(s, None)
    assert sol.symbol == "SOL-USD" and sol.to_ticks(Decimal("1.234")) == 1234
