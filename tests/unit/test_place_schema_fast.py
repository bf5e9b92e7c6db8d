"""``PlaceOrderSchema.load_order`` (the fast path of every place) answers exactly as
``load``: the same dict for a valid body, the same ValidationError messages otherwise."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest
from marshmallow import ValidationError

from schemas.orders import PlaceOrderSchema
from settings import Settings

SCHEMA = PlaceOrderSchema(Settings())

VALUES = {
    "symbol": ["BTC-USD", "ETH-USD", "NOPE-USD", "", None, 5, ["BTC-USD"]],
    "type": ["BUY", "SELL", "buy", None, 1, True],
    "side": ["BUY", "SELL", "HOLD", None, 0],
    "orderType": ["LIMIT", "MARKET", "STOP_LIMIT", "STOP_MARKET", "limit", None, 3],
    "price": [
        "100",
        "100.5",
        "100.123",
        " 101 ",
        "-1",
        "0",
        100,
        Decimal("99.5"),
        1.5,
        "1e3",
        "abc",
        None,
        True,
        "NaN",
        [],
        {"a": 1},
    ],
    "quantity": ["1", "0.5", "0.0001", "0", "-2", 2, Decimal("0.25"), None, False, "x", "1" * 30],
    "timeInForce": ["GTC", "IOC", "FOK", "GTD", "gtc", None, 7],
    "postOnly": [True, False, 1, 0, "true", None],
    "clientOrderId": ["c1", "abc\n", "a" * 64, "a" * 65, "bad id", "", None, 12],
    "selfTradePrevention": ["NONE", "CANCEL_TAKER", "CANCEL_MAKER", "CANCEL_BOTH", "x", None],
    "stopPrice": ["101", "99.99", None, "-1", "y", 5],
    "expireTime": ["soon", None, 1.5, True, 0, "future", "past"],
    "unknownKey": [1],
    "order_type": ["LIMIT"],
}


def _value(rnd, key):
    v = rnd.choice(VALUES[key])
    now = int(time.time() * 1000)
    if v == "future":
        return now + 60_000
    if v == "past":
        return now - 60_000
    return v


def _outcome(fn, body):
    try:
        return "ok", fn(body)
    except ValidationError as err:
        return "error", err.messages
    except Exception as err:  # noqa: BLE001 - whatever load raises, load_order must too
        return "raised", type(err).__name__


@pytest.mark.parametrize("seed", range(8))
def test_load_order_is_load(seed):
    rnd = random.Random(seed)
    common = ["symbol", "type", "side", "price", "quantity", "orderType", "timeInForce"]
    rare = [k for k in VALUES if k not in common]
    outcomes = {"ok": 0, "error": 0, "raised": 0}
    for _ in range(2500):
        body = {}
        if rnd.random() < 0.6:  # mostly valid-looking bodies, so both paths are exercised
            body = {
                "symbol": "BTC-USD",
                "type": rnd.choice(["BUY", "SELL"]),
                "price": rnd.choice(["100", "100.5", "99.25"]),
                "quantity": "1",
            }
        for key in rnd.sample(common, rnd.randint(0, 3)) + rnd.sample(rare, rnd.randint(0, 2)):
            body[key] = _value(rnd, key)
        expected = _outcome(SCHEMA.load, dict(body))
        got = _outcome(SCHEMA.load_order, dict(body))
        assert got == expected, body
        outcomes[expected[0]] += 1
    assert outcomes["ok"] > 200 and outcomes["error"] > 200


def test_load_order_valid_bodies():
    body = {"symbol": "ETH-USD", "side": "SELL", "orderType": "MARKET", "quantity": "0.5"}
    assert SCHEMA.load_order(body) == SCHEMA.load(body)
    assert SCHEMA.load_order(body)["time_in_force"].value == "IOC"
    with pytest.raises(ValidationError) as err:
        SCHEMA.load_order({"symbol": "ETH-USD", "side": "SELL", "orderType": "MARKET"})
    assert err.value.messages == {"quantity": ["Missing data for required field."]}
