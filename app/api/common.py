"""What every view needs: settings, the store, strict JSON bodies and query strings."""

from __future__ import annotations

import json
from decimal import Decimal

from flask import current_app, request
from marshmallow import Schema

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


def json_body():
    """The request body as JSON with exact decimals; 415/400 for anything else."""
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json.")
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "INVALID_JSON", f"The body is not valid JSON: {exc}") from None


def json_object():
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "VALIDATION_ERROR", "The body must be a JSON object.")
    return body


def query(schema: Schema) -> dict:
    """Query arguments through a strict schema (unknown or repeated ones are 400s)."""
    if not request.args:  # the usual case: the schema's defaults, loaded once per app
        known = current_app.extensions.setdefault("query_defaults", {})
        defaults = known.get(schema)
        if defaults is None:
            defaults = known[schema] = schema.load({})
        return dict(defaults)
    args = {}
    for name, values in request.args.lists():
        if len(values) > 1:
            raise ApiError(400, "VALIDATION_ERROR", f"Query argument {name!r} is repeated.",
                           {name: ["Given more than once."]})
        args[name] = values[0]
    return schema.load(args)
