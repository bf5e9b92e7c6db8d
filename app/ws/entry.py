"""Order entry over the socket (api.md §4): ``place`` and ``cancel`` with a ``reqId``.

The same validation (``PlaceOrderSchema``), journal and matching queue as REST: the
body of a ``place`` is the ``POST /api/orders`` body, and the answer is ``{"event":
"ack", "reqId", "order"}`` (the 202 body; a replay of a clientOrderId answers the
original order, as REST's 200 does) or ``{"event": "error", "reqId", "code",
"message", "fields"?}`` with REST's codes (``CLIENT_ORDER_ID_REUSED`` for a
clientOrderId reused with different fields, ...). When auth is required, order entry
needs ``{"op": "auth"}`` first (``AUTH_REQUIRED``). Each command's journal request id
is ``ws-<connection id>-<n>``.

``place_order`` / ``cancel_order`` below are the one place that calls what the REST
views call; swap them for the shared service function when it exists.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import redis
from marshmallow import ValidationError

from app.errors import ApiError
from store.pool import PoolExhausted

OPS = ("place", "cancel")
REQ_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _no_constants(name):
    raise ValueError(f"{name} is not a number")


def handle(conn, data, raw: dict) -> None:
    """One ``place`` or ``cancel`` frame (``raw``: its orjson parse, ``data``: its text)."""
    req_id = raw.get("reqId")
    if not (isinstance(req_id, str) and REQ_ID.match(req_id)):
        return conn.send_obj(_error(None, ApiError(
            400, "VALIDATION_ERROR", "Invalid request.",
            {"reqId": ["Required: 1 to 64 characters, each a letter, a digit or one of _ . : -"]})))
    try:
        answer = _place(conn, data) if raw["op"] == "place" else _cancel(conn, raw)
        conn.send_obj({"event": "ack", "reqId": req_id, "order": answer})
    except ApiError as err:
        conn.send_obj(_error(req_id, err))
    except ValidationError as err:
        fields = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        conn.send_obj(_error(req_id, ApiError(400, "VALIDATION_ERROR", "Invalid request.",
                                              fields)))
    except PoolExhausted:
        from app import metrics

        metrics.count_overloaded("ws")
        conn.send_obj(_error(req_id, ApiError(
            503, "OVERLOADED", "This node is at capacity; nothing was done. Retry shortly.")))
    except redis.exceptions.RedisError:
        conn.send_obj(_error(req_id, ApiError(503, "STORE_UNAVAILABLE",
                                              "The order store is unreachable; retry.")))


def _error(req_id, err: ApiError) -> dict:
    out = {"event": "error", "reqId": req_id, "code": err.code, "message": err.message}
    if err.fields:
        out["fields"] = err.fields
    return out


def _account(conn) -> str:
    from engine.types import ANONYMOUS

    settings = conn.settings
    if settings.read_only:
        raise ApiError(403, "READ_ONLY_NODE",
                       "This is a read-only API node; send writes to a primary node.")
    if conn.account is not None:
        return conn.account
    if settings.auth_required:
        raise ApiError(401, "AUTH_REQUIRED", "Order entry needs {'op': 'auth'} first.")
    return ANONYMOUS


def _request_id(conn) -> str:
    conn._entries += 1
    return f"ws-{conn.conn_id}-{conn._entries}"


def _place(conn, data) -> dict:
    account = _account(conn)
    try:  # exact decimals, as REST parses its body (orjson would give floats)
        body = json.loads(data, parse_float=Decimal, parse_constant=_no_constants)
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", f"The frame is not valid JSON: {exc}") from None
    del body["op"], body["reqId"]
    return place_order(account, body, _request_id(conn))


def _cancel(conn, raw: dict) -> dict:
    account = _account(conn)
    unknown = sorted(set(raw) - {"op", "reqId", "orderId"})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    order_id = raw.get("orderId")
    if not (isinstance(order_id, str) and ORDER_ID.match(order_id)):
        raise ValidationError({"orderId": ["Required: the order's id."]})
    return cancel_order(account, order_id, _request_id(conn))


# -- what the REST views do (app.api.orders) ----------------------------------------------
def place_order(account: str, body: dict, request_id: str) -> dict:
    """Validate, journal and queue one order; the accepted order (or, for a replayed
    clientOrderId, the original). Raises ApiError / ValidationError like the view."""
    from app import metrics
    from app.api import orders
    from app.api.common import get_redis, market_for, settings
    from store import journal

    s = settings()
    data = orders._place_schema().load(body)
    market = market_for(data["symbol"])
    result = journal.accept(get_redis(), market, account, data, request_id,
                            s.max_open_orders_per_account)
    if result.outcome == "duplicate":
        return orders._replayed_order(result.order_id, data)
    if result.outcome == "limited":
        raise ApiError(429, "TOO_MANY_OPEN_ORDERS",
                       f"At most {s.max_open_orders_per_account} open orders per account.")
    metrics.count_accepted(result.order)
    if result.woke:
        orders._wake(market.symbol, result.sequence)
    return result.order


def cancel_order(account: str, order_id: str, request_id: str) -> dict:
    """Journal a cancel as ``DELETE /api/orders/<id>`` does; the order as known now."""
    from app import auth
    from app.api import orders
    from app.api.common import all_markets, get_redis, settings
    from archive import reads as history
    from store import journal

    owner = auth.owner_filter(account)
    outcome = journal.request_cancel(get_redis(), order_id, owner, request_id)
    if outcome.outcome == "not_found" and (status := history.archived_status(
            get_redis(), settings(), all_markets(), order_id, owner)):
        raise ApiError(409, "ORDER_NOT_CANCELLABLE", f"The order is already {status}.")
    if outcome.outcome == "not_found":
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    if outcome.outcome == "final":
        raise ApiError(409, "ORDER_NOT_CANCELLABLE", f"The order is already {outcome.status}.")
    if outcome.woke:
        orders._wake(outcome.symbol, outcome.sequence)
    return orders._order_with_fills(order_id)
