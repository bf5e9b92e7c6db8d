"""Orders: place (one or a batch), list, get, cancel. Thin: parse, call the store, answer."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, g, jsonify
from marshmallow import ValidationError

from app import auth, metrics
from app.api.common import all_markets, get_redis, json_object, market_for, query, settings
from app.errors import ApiError
from schemas.orders import BatchSchema, OrdersQuery, PlaceOrderSchema, WaitQuery
from store import codec, journal, keys, read
from store.read import BadCursor
from workers.celery_app import send_wakeup

log = logging.getLogger(__name__)
bp = Blueprint("orders", __name__)


def _wake(symbol: str, sequence: int) -> None:
    """Send the matching task; if the broker hiccups the worker's sweep still applies it."""
    try:
        send_wakeup(current_app.extensions["celery"], symbol, sequence)
    except Exception:  # the command is journaled: it is not lost, only later
        log.warning("could not send the matching task for %s #%d", symbol, sequence,
                    exc_info=True)


def _wait_applied(symbol: str, sequence: int, timeout_ms: int) -> bool:
    from app.events import get_hub

    r = get_redis()
    return get_hub(current_app._get_current_object()).wait_for(
        symbol, sequence, timeout_ms / 1000,
        already_done=lambda: int(r.get(keys.applied(symbol)) or 0) >= sequence,
    )


def _settled(order_id: str, symbol: str, sequence: int, timeout_ms: int) -> dict | None:
    """The order once the matcher processed it; None if that took longer than the timeout
    or the store could not be read meanwhile (busy node): the order IS accepted, so the
    caller answers 202 with it, never an error that would invite a second order."""
    try:
        if _wait_applied(symbol, sequence, timeout_ms):
            return _order_with_fills(order_id)
    except redis.RedisError as err:
        log.warning("order %s accepted; its ?wait=true read failed: %s", order_id, err)
    return None


def _order_with_fills(order_id: str, owner: str | None = None) -> dict:
    h = read.order_hash(get_redis(), order_id)
    if h is None or (owner is not None and h["acct"] != owner):
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    order = codec.order_json_from_hash(h, all_markets()[h["sym"]])
    order["fills"] = read.fills(get_redis(), h["sym"], order_id)
    return order


def _place_schema() -> PlaceOrderSchema:
    # Built once per app: constructing a marshmallow schema costs more than loading with it.
    ext = current_app.extensions
    if "place_order_schema" not in ext:
        ext["place_order_schema"] = PlaceOrderSchema(settings())
    return ext["place_order_schema"]


_WAIT_QUERY = WaitQuery()
_ORDERS_QUERY = OrdersQuery()
_BATCH = BatchSchema()


def _error_item(err: ValidationError) -> dict:
    fields = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
    return {"error": {"code": "VALIDATION_ERROR", "message": "Invalid order.", "fields": fields}}


@bp.post("/api/orders")
def place_order():
    account = auth.current_account(required=True)
    body = json_object()
    wait = query(_WAIT_QUERY)
    s = settings()
    request_data = _place_schema().load(body)
    market = market_for(request_data["symbol"])
    result = journal.accept(get_redis(), market, account, request_data, g.request_id,
                            s.max_open_orders_per_account)
    if result.outcome == "duplicate":
        return jsonify(_order_with_fills(result.order_id)), 200
    if result.outcome == "limited":
        raise ApiError(429, "TOO_MANY_OPEN_ORDERS",
                       f"At most {s.max_open_orders_per_account} open orders per account.")
    metrics.count_accepted(result.order)
    if result.woke:
        _wake(market.symbol, result.sequence)
    if wait["wait"]:
        settled = _settled(result.order_id, market.symbol, result.sequence, wait["timeout"])
        if settled is not None:
            return jsonify(settled), 201
    return jsonify(result.order), 202


@bp.post("/api/orders/batch")
def place_batch():
    account = auth.current_account(required=True)
    s = settings()
    raw_orders = _BATCH.load(json_object())["orders"]
    results: list = [None] * len(raw_orders)
    items, positions = [], []
    schema = _place_schema()
    for i, raw in enumerate(raw_orders):
        try:
            if not isinstance(raw, dict):
                raise ValidationError({"_schema": ["Each order must be a JSON object."]})
            data = schema.load(raw)
        except ValidationError as err:
            results[i] = _error_item(err)
            metrics.count_item_rejected("VALIDATION_ERROR")
            continue
        items.append((market_for(data["symbol"]), account, data, f"{g.request_id}.{i}"))
        positions.append(i)
    accepted = journal.accept_many(get_redis(), items, s.max_open_orders_per_account)
    wake: dict[str, int] = {}
    for i, item, result in zip(positions, items, accepted, strict=True):
        if result.outcome == "created":
            results[i] = result.order
            metrics.count_accepted(result.order)
            if result.woke:
                wake[item[0].symbol] = result.sequence
        elif result.outcome == "duplicate":
            results[i] = _order_with_fills(result.order_id)
        else:
            results[i] = {"error": {"code": "TOO_MANY_OPEN_ORDERS",
                                    "message": "Too many open orders for this account."}}
            metrics.count_item_rejected("TOO_MANY_OPEN_ORDERS")
    for symbol, sequence in wake.items():
        _wake(symbol, sequence)
    return jsonify({"results": results}), 202


@bp.get("/api/orders")
def list_orders():
    account = auth.current_account(required=True)
    q = query(_ORDERS_QUERY)
    if q["symbol"] is not None:
        market_for(q["symbol"])
    try:
        orders, next_cursor = read.list_orders(
            get_redis(), all_markets(), account, symbol=q["symbol"], statuses=q["status"],
            side=q["side"], limit=q["limit"], cursor=q["cursor"])
    except BadCursor:
        raise ApiError(400, "VALIDATION_ERROR", "Unparseable cursor.",
                       {"cursor": ["Unparseable cursor."]}) from None
    return jsonify({"orders": orders, "nextCursor": next_cursor})


@bp.get("/api/orders/<order_id>")
def get_order(order_id: str):
    account = auth.current_account(required=True)
    return jsonify(_order_with_fills(order_id, auth.owner_filter(account)))


@bp.delete("/api/orders/<order_id>")
def cancel_order(order_id: str):
    account = auth.current_account(required=True)
    wait = query(_WAIT_QUERY)
    owner = auth.owner_filter(account)
    outcome = journal.request_cancel(get_redis(), order_id, owner, g.request_id)
    if outcome.outcome == "not_found":
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    if outcome.outcome == "final":
        raise ApiError(409, "ORDER_NOT_CANCELLABLE", f"The order is already {outcome.status}.")
    if outcome.woke:
        _wake(outcome.symbol, outcome.sequence)
    if wait["wait"] and _wait_applied(outcome.symbol, outcome.sequence, wait["timeout"]):
        return jsonify(_order_with_fills(order_id)), 200
    return jsonify(_order_with_fills(order_id)), 202
