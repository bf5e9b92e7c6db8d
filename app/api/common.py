"""What every view needs: settings, the store, strict JSON bodies and query strings.

The helpers take the request (``req``) when the view has it at hand: each ``request.x``,
``current_app.x`` or ``g.x`` is a context-variable lookup through werkzeug's proxy (0.7 us
on this box, against 0.02 us for an attribute of the object itself). ``POST /api/orders``
made 24 of them (9 in its view and these helpers), now 15 (2). With the shared decoder
and ``json_response`` below: 1,479,000 -> 1,347,000 instructions per POST (-9.0 %;
callgrind, POSTs through ``app.wsgi_app`` against a real Redis, gevent patched), ~28 us
of the ~300 us that path costs, so ~3 % of the web's ~0.93 ms per order (gunicorn and
the kernel's socket work are the rest). ``bench.load --mode single``, 9 A/B pairs: web CPU
per order 0.966 -> 0.898 ms in the mean, the box's noise (+-15 %) larger than the gain.
"""

from __future__ import annotations

import json
from decimal import Decimal

from flask import Flask, Request, Response, current_app, request
from marshmallow import Schema

from app import orjson_body
from app.errors import ApiError
from app.redis_client import get_redis  # noqa: F401  (re-exported for the views)
from schemas.markets import Market, UnknownMarket, get_market


def settings():
    return current_app.config["SETTINGS"]


def market_for(symbol: str | None) -> Market:
    try:
        return get_market(settings(), symbol, all_markets())
    except UnknownMarket:
        raise ApiError(400, "VALIDATION_ERROR", f"Unknown symbol {symbol!r}.",
                       {"symbol": [f"Unknown symbol {symbol!r}."]}) from None


def all_markets() -> dict[str, Market]:
    return current_app.extensions["markets"]  # app.create_app


def _no_constants(name):
    raise ValueError(f"{name} is not a number")


# One decoder per process: json.loads with parse_float builds a JSONDecoder (and its C
# scanner) per call; 2.9 -> 1.6 us per order body (timeit on this box).
_EXACT = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constants)


def loads_exact(data: str | bytes):
    """``json.loads(data, parse_float=Decimal)`` with NaN and Infinity refused (ValueError),
    through the process's decoder: the same values and the same errors as json.loads (its
    encoding detection for bytes, its BOM check for text). REST bodies and /ws frames."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
    else:
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    return _EXACT.decode(data)


def json_body(req: Request | None = None):
    """The request body as JSON with exact decimals; 415/400 for anything else."""
    if req is None:
        req = request._get_current_object()
    if not req.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")
    raw = req.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        return loads_exact(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "INVALID_JSON", f"The body is not valid JSON: {exc}") from None


def json_object(req: Request | None = None):
    body = json_body(req)
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "The body must be a JSON object.")
    return body


# A schema's defaults depend on the schema only (the views' query schemas are module-level)
_QUERY_DEFAULTS: dict[Schema, dict] = {}


def query(schema: Schema, req: Request | None = None) -> dict:
    """Query arguments through a strict schema (unknown or repeated ones are 400s)."""
    args_ = (request if req is None else req).args
    if not args_:  # the usual case: the schema's defaults, loaded once
        defaults = _QUERY_DEFAULTS.get(schema)
        if defaults is None:
            defaults = _QUERY_DEFAULTS[schema] = schema.load({})
        return dict(defaults)
    args = {}
    for name, values in args_.lists():
        if len(values) > 1:
            raise ApiError(400, "VALIDATION_ERROR", f"Query argument {name!r} is repeated.",
                           {name: ["Given more than once."]})
        args[name] = values[0]
    return schema.load(args)


def json_response(app: Flask, obj, status: int) -> Response:
    """``jsonify(obj), status`` with the app at hand: the same bytes and headers
    (``OrjsonProvider.response``), without jsonify's lookups and Flask's handling of a
    ``(response, status)`` tuple: 8.2 -> 5.0 us for an order (timeit on this box)."""
    try:
        body = orjson_body(obj)
    except TypeError:  # past what orjson takes: the provider's stdlib fallback
        response = app.json.response(obj)
        response.status_code = status
        return response
    return app.response_class(body, status=status, mimetype="application/json")
