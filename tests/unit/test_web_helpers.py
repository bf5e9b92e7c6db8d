"""The shortcuts of ``POST /api/orders`` answer exactly as what they replace:
``loads_exact`` as ``json.loads(parse_float=Decimal, parse_constant=...)`` (values and
errors, bytes and text), ``json_response`` as ``jsonify(obj), status`` (bytes, headers)."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal

import pytest

from app.api.common import _no_constants, json_response, loads_exact

ORDER = '{"symbol":"BTC-USD","side":"BUY","price":"30000.01","quantity":0.5,"n":1e400}'
TEXTS = [
    ORDER, "", " ", "{", "[]", "null", "1", '"x"', "true", "[1.5, -0, 1E-3]",
    '{"a": NaN}', '{"price": Infinity}', '{"price": -Infinity}', "{'a': 1}",
    '{"quantity": 1,}', '{"a": "\\ud800"}', '{"é": "ü"}', "\ufeff{}", "{} x",
    "[" * 50_000 + "]" * 50_000,
]
BYTES = [
    *(t.encode("utf-8", "surrogatepass") for t in TEXTS),
    b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf{}", b"\xef\xbb\xbf", b"\xed\xa0\x80",
    b'{"a": "\xed\xa0\x80"}', b"\x80", b"{\x00}", ORDER.encode("utf-16"),
    ORDER.encode("utf-16-le"), ORDER.encode("utf-32"), ORDER.encode("utf-32-be"),
    codecs.BOM_UTF8 + ORDER.encode(), bytearray(ORDER.encode()),
]


def _outcome(parse, data):
    try:
        return "ok", parse(data)
    except (ValueError, RecursionError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("data", TEXTS + BYTES, ids=range(len(TEXTS) + len(BYTES)))
def test_loads_exact_is_json_loads(data):
    expected = _outcome(lambda d: json.loads(d, parse_float=Decimal,
                                             parse_constant=_no_constants), data)
    assert _outcome(loads_exact, data) == expected


def test_loads_exact_decimals():
    body = loads_exact(ORDER.encode())
    assert body["quantity"] == Decimal("0.5") and isinstance(body["n"], Decimal)


@pytest.mark.parametrize("obj,status", [
    ({"id": "ord_1", "price": "1.5", "quantity": Decimal("0.10"), "fills": [], "x": None}, 202),
    ({"id": "ord_2", "big": 2**70, "nested": {1: "a"}}, 201),  # past orjson: stdlib way
    ([1, 2, 3], 200),
])
def test_json_response_is_jsonify(app, obj, status):
    from flask import jsonify

    with app.test_request_context("/api/orders", method="POST"):
        expected = app.make_response((jsonify(obj), status))
        got = json_response(app, obj, status)
    assert got.status == expected.status and got.status_code == status
    assert got.get_data() == expected.get_data()
    assert got.get_data().endswith(b"\n")
    assert list(got.headers.items()) == list(expected.headers.items())
