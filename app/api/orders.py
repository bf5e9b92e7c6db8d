"""Orders: place (one or a batch), list, get, cancel, and the order management of the
README's "Order management" section (reduce, replace, cancel-all, test, by clientOrderId).
Thin: parse, call the service (``app.trading``) or the store, answer."""

from __future__ import annotations

import logging
import time

import redis
from flask import Blueprint, current_app, g, jsonify, request
from marshmallow import ValidationError

from app import auth, metrics, trading
from app.api.common import (
    all_markets,
    get_redis,
    json_object,
    json_response,
    market_for,
    query,
    settings,
)
from app.errors import ApiError
from archive import reads as history
from schemas.orders import (
    BatchSchema,
    CancelAllQuery,
    NoQuery,
    OrdersQuery,
    PlaceOrderSchema,
    ReduceSchema,
    WaitQuery,
)
from store import events, journal, read

log = logging.getLogger(__name__)
bp = Blueprint("orders", __name__)


def _desk() -> trading.Desk:
    return trading.for_app(current_app)


def _wake(symbol: str, sequence: int) -> None:
    trading.wake_matcher(_desk(), symbol, sequence)


def _wait_applied(symbol: str, sequence: int, timeout_ms: int) -> bool:
    from app.events import get_hub

    r = get_redis()
    return get_hub(current_app._get_current_object()).wait_for(
        symbol, sequence, timeout_ms / 1000,
        already_done=lambda: read.applied(r, symbol) >= sequence,
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
    # Redis first, then the history archive (archive.reads): the same JSON either way.
    return trading.order_with_fills(_desk(), order_id, owner)


def _place_schema() -> PlaceOrderSchema:
    return _desk().place_schema


_WAIT_QUERY = WaitQuery()
_ORDERS_QUERY = OrdersQuery()
_BATCH = BatchSchema()
_REDUCE = ReduceSchema()
_CANCEL_ALL_QUERY = CancelAllQuery()
_NO_QUERY = NoQuery()


def _error_item(err: ValidationError) -> dict:
    fields = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
    return {"error": {"code": "VALIDATION_ERROR", "message": "Invalid order.", "fields": fields}}


@bp.post("/api/orders")
def place_order():
    # The request and the app looked up once and handed on (app.api.common says why).
    req, app = request._get_current_object(), current_app._get_current_object()
    desk = trading.for_app(app)
    account = auth.current_account(True, req, desk.settings)
    body = json_object(req)
    wait = query(_WAIT_QUERY, req)
    request_data = desk.place_schema.load_order(body)
    return _accept_and_answer(app, desk, account, request_data, wait, processed_status=201)


@bp.post("/api/orders/test")
def test_order():
    """Validate like a place; store and queue nothing."""
    auth.current_account(required=True)
    body = json_object()
    query(_NO_QUERY)
    market_for(_place_schema().load_order(body)["symbol"])
    return jsonify({"valid": True}), 200


@bp.post("/api/orders/<order_id>/replace")
def replace_order(order_id: str):
    req, app = request._get_current_object(), current_app._get_current_object()
    desk = trading.for_app(app)
    account = auth.current_account(True, req, desk.settings)
    body = json_object(req)
    wait = query(_WAIT_QUERY, req)
    original = _owned_hash(order_id, account)
    if original["status"] in FINAL:
        raise ApiError(409, "ORDER_NOT_REPLACEABLE", f"The order is already {original['status']}.")
    body.setdefault("symbol", original["sym"])  # a replace stays on the original's market
    request_data = desk.place_schema.load_order(body)
    if request_data["symbol"] != original["sym"]:
        raise ApiError(400, "VALIDATION_ERROR", "A replace keeps the original's symbol.",
                       {"symbol": [f"Must be {original['sym']}, the original order's symbol."]})
    if request_data["side"].value != original["side"]:
        name = "side" if "side" in body else "type"
        raise ApiError(400, "VALIDATION_ERROR", "A replace keeps the original's side.",
                       {name: [f"Must be {original['side']}, the original order's side."]})
    request_data["replaces_order_id"] = order_id
    return _accept_and_answer(app, desk, account, request_data, wait, processed_status=200)


def _accept_and_answer(app, desk: trading.Desk, account: str, request_data: dict, wait: dict,
                       processed_status: int):
    """Journal one validated order (a place or a replace) and answer as the contract says."""
    placed = trading.place(desk, account, [request_data], [g.request_id])[0]
    if placed.error is not None:
        raise placed.error
    if placed.status == 202 and wait["wait"]:
        order = placed.order
        settled = _settled(order["id"], order["symbol"], placed.sequence, wait["timeout"])
        if settled is not None:
            return json_response(app, settled, processed_status)
    return json_response(app, placed.order, placed.status)


FINAL = ("FILLED", "CANCELLED", "REJECTED")


def _owned_hash(order_id: str, account: str) -> dict:
    """The order's hash, or 404 when it is unknown or (auth on) another account's."""
    h = read.order_hash(get_redis(), order_id)
    owner = auth.owner_filter(account)
    if h is None or (owner is not None and h["acct"] != owner):
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    return h


@bp.post("/api/orders/batch")
def place_batch():
    account = auth.current_account(required=True)
    query(_NO_QUERY)
    raw_orders = _BATCH.load(json_object())["orders"]
    results: list = [None] * len(raw_orders)
    orders, request_ids, positions = [], [], []
    schema = _place_schema()
    for i, raw in enumerate(raw_orders):
        try:
            if not isinstance(raw, dict):
                raise ValidationError({"_schema": ["Each order must be a JSON object."]})
            data = schema.load_order(raw)
        except ValidationError as err:
            results[i] = _error_item(err)
            metrics.count_item_rejected("VALIDATION_ERROR")
            continue
        orders.append(data)
        request_ids.append(f"{g.request_id}.{i}")
        positions.append(i)
    placed = trading.place(_desk(), account, orders, request_ids) if orders else []
    for i, outcome in zip(positions, placed, strict=True):
        if outcome.error is None:
            results[i] = outcome.order
            continue
        err = outcome.error
        results[i] = {"error": {"code": err.code, "message": err.message, "fields": err.fields}}
        if err.code == "TOO_MANY_OPEN_ORDERS":
            metrics.count_item_rejected(err.code)
    return jsonify({"results": results}), 202


@bp.get("/api/orders")
def list_orders():
    account = auth.current_account(required=True)
    q = query(_ORDERS_QUERY)
    if q["symbol"] is not None:
        market_for(q["symbol"])
    if q["client_order_id"] is not None:
        return jsonify({"orders": _by_client_id(account, q), "nextCursor": None})
    orders, next_cursor = history.list_orders(
        get_redis(), settings(), all_markets(), account, symbol=q["symbol"],
        statuses=q["status"], side=q["side"], limit=q["limit"], cursor=q["cursor"])
    return jsonify({"orders": orders, "nextCursor": next_cursor})


@bp.get("/api/orders/<order_id>")
def get_order(order_id: str):
    account = auth.current_account(required=True)
    return jsonify(_order_with_fills(order_id, auth.owner_filter(account)))


@bp.delete("/api/orders/<order_id>")
def cancel_order(order_id: str):
    account = auth.current_account(required=True)
    return _cancel(order_id, account, query(_WAIT_QUERY))


@bp.delete("/api/orders/by-client-id/<client_order_id>")
def cancel_by_client_id(client_order_id: str):
    account = auth.current_account(required=True)
    args = dict(request.args)
    symbol = args.pop("symbol", None)
    wait = _WAIT_QUERY.load(args)
    if symbol is not None:
        market_for(symbol)
    found = read.client_orders(get_redis(), account, [symbol] if symbol else settings().symbols,
                               client_order_id)
    if not found:
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order with clientOrderId {client_order_id!r}"
                       + (f" on {symbol}." if symbol else "."))
    if len(found) > 1:  # unique per (account, symbol) only (api.md §8)
        raise ApiError(400, "VALIDATION_ERROR", "Several markets have an order with this "
                       "clientOrderId.", {"symbol": ["Required: clientOrderId "
                                                     f"{client_order_id!r} is used on "
                                                     f"{', '.join(h['sym'] for h in found)}."]})
    return _cancel(found[0]["id"], account, wait)


def _cancel(order_id: str, account: str, wait: dict):
    outcome = trading.cancel(_desk(), order_id, auth.owner_filter(account), g.request_id)
    return _queued_answer(order_id, outcome, wait)


def _queued_answer(order_id: str, outcome, wait: dict):
    """202 with the order as known now; with wait=true 200 once the command was applied."""
    if wait["wait"] and _wait_applied(outcome.symbol, outcome.sequence, wait["timeout"]):
        return jsonify(_order_with_fills(order_id)), 200
    return jsonify(_order_with_fills(order_id)), 202


@bp.patch("/api/orders/<order_id>")
def reduce_order(order_id: str):
    """Reduce to a new total quantity, keeping the order's place in its queue."""
    account = auth.current_account(required=True)
    body = json_object()
    wait = query(_WAIT_QUERY)
    new_quantity = _REDUCE.load(body)["quantity"]
    h = _owned_hash(order_id, account)
    if h["otype"] == "MARKET":
        raise ApiError(409, "ORDER_NOT_AMENDABLE", "A MARKET order cannot be reduced.")
    market = all_markets()[h["sym"]]
    try:
        lots = market.to_lots(new_quantity)
    except ValueError as exc:
        raise ApiError(400, "VALIDATION_ERROR", "Invalid quantity.",
                       {"quantity": [f"Quantity {exc}."]}) from None
    outcome = trading.cancel(_desk(), order_id, auth.owner_filter(account), g.request_id,
                             reduce_to=lots)
    return _queued_answer(order_id, outcome, wait)


@bp.delete("/api/orders")
def cancel_all():
    """Cancel the caller's open, untriggered and PENDING orders: one command per symbol."""
    account = auth.current_account(required=True)
    q = query(_CANCEL_ALL_QUERY)
    symbols = [market_for(q["symbol"]).symbol] if q["symbol"] else list(settings().symbols)
    r = get_redis()
    queued = [journal.request_cancel_all(r, symbol, account, g.request_id)
              for symbol in symbols]
    for c in queued:
        if c.woke:
            _wake(c.symbol, c.sequence)
    requests = [{"symbol": c.symbol, "sequence": c.sequence} for c in queued]
    if not q["wait"]:
        return jsonify({"requests": requests}), 202
    deadline = time.monotonic() + q["timeout"] / 1000
    for c in queued:
        left_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not _wait_applied(c.symbol, c.sequence, left_ms):
            return jsonify({"requests": requests}), 202
    return jsonify({"orders": _cancelled_by(queued)}), 200


def _cancelled_by(queued) -> list[dict]:
    """The orders each cancel-all cancelled: open when it was journaled, cancelled by the
    user at its timestamp (the engine stamps every cancel with its command's timestamp)."""
    out = []
    for c in queued:
        for order_id in c.open_ids:
            h = read.order_hash(get_redis(), order_id)
            if (h and h["status"] == "CANCELLED" and h["reason"] == "USER_CANCELLED"
                    and int(h["upd"]) == c.timestamp):
                out.append(events.order_from_hash(h, all_markets()[h["sym"]]))
    return out


def _by_client_id(account: str, q: dict) -> list[dict]:
    """``GET /api/orders?clientOrderId=``: the caller's orders with it (one per market at
    most: unique per account and symbol) that the other filters let through."""
    symbols = [q["symbol"]] if q["symbol"] else settings().symbols
    return [events.order_from_hash(h, all_markets()[h["sym"]])
            for h in read.client_orders(get_redis(), account, symbols, q["client_order_id"])
            if not (q["status"] and h["status"] not in q["status"])
            and not (q["side"] and h["side"] != q["side"])]
