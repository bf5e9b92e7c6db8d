"""Order entry over the socket (api.md §4): ``place`` and ``cancel`` with a ``reqId``.

The same validation (``PlaceOrderSchema``), journal and matching queue as REST: the
body of a ``place`` is the ``POST /api/orders`` body, and the answer is ``{"event":
"ack", "reqId", "order"}`` (the 202 body; a replay of a clientOrderId answers the
original order, as REST's 200 does) or ``{"event": "error", "reqId", "code",
"message", "fields"?}`` with REST's codes (``CLIENT_ORDER_ID_REUSED`` for a
clientOrderId reused with different fields, ...). When auth is required, order entry
needs ``{"op": "auth"}`` first (``AUTH_REQUIRED``). Each command's journal request id
is ``ws-<connection id>-<n>``.

Orders go through ``app.trading``, the service the REST views use (one validation
schema, journal and wake-up). The places a socket has sent when its thread wakes are
journaled together (one round trip, in order), as REST's batch endpoint does.
"""

from __future__ import annotations

import re

import redis
from marshmallow import ValidationError

from app.api.common import loads_exact
from app.errors import ApiError
from schemas import ws as frames
from store.pool import PoolExhausted

OPS = frames.ENTRY_OPS
REQ_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


_BAD_REQ_ID = ApiError(400, "VALIDATION_ERROR", "Invalid request.", {
    "reqId": ["Required: 1 to 64 characters, each a letter, a digit or one of _ . : -"]})


def handle(conn, received: list[tuple[object, dict]]) -> list[bytes]:
    """The answers to ``received`` (``place``/``cancel``; each ``(text, orjson parse)``),
    in order. The places of a run are journaled in one round trip (``place_orders``), in
    frame order, as REST's batch does."""
    out: list[bytes] = []
    run: list[tuple[str, dict]] = []  # (reqId, body) of places not yet journaled
    for data, raw in received:
        req_id = raw.get("reqId")
        if not (isinstance(req_id, str) and REQ_ID.match(req_id)):
            out.append(_error_frame(None, _BAD_REQ_ID))
            continue
        if raw["op"] == "place":
            try:
                run.append((req_id, _place_body(conn, data)))
            except (ApiError, ValidationError) as err:
                _flush(conn, run, out)
                out.append(_error_frame(req_id, _api_error(err)))
            continue
        _flush(conn, run, out)
        out.append(_answer(req_id, lambda raw=raw: _cancel(conn, raw)))
    _flush(conn, run, out)
    return out


def _flush(conn, run: list, out: list) -> None:
    """Journal the pending places of ``run`` and append their answers."""
    if not run:
        return
    try:
        account = _account(conn)
        outcomes = place_orders(conn, account, [(body, _request_id(conn)) for _, body in run])
    except (ApiError, ValidationError, redis.exceptions.RedisError) as err:
        outcomes = [err] * len(run)  # one answer per frame, the same for all of the run
    for (req_id, _), outcome in zip(run, outcomes, strict=True):
        out.append(_answer(req_id, lambda outcome=outcome: _raise_or_return(outcome)))
    run.clear()


def _raise_or_return(outcome):
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _answer(req_id: str, work) -> bytes:
    """``work()``'s order as an ack, or what it raised as REST would answer it."""
    from app.ws.feeds import json_frame

    try:
        return json_frame({"event": "ack", "reqId": req_id, "order": work()})
    except (ApiError, ValidationError, redis.exceptions.RedisError) as err:
        return _error_frame(req_id, _api_error(err))


def _api_error(err: Exception) -> ApiError:
    """The ApiError REST's handlers (app.errors) answer ``err`` with."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, ValidationError):
        fields = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        return ApiError(400, "VALIDATION_ERROR", "Invalid request.", fields)
    if isinstance(err, PoolExhausted):
        from app import metrics

        metrics.count_overloaded("ws")
        return ApiError(503, "OVERLOADED",
                        "This node is at capacity; nothing was done. Retry shortly.")
    return ApiError(503, "STORE_UNAVAILABLE", "The order store is unreachable; retry.")


def _error_frame(req_id, err: ApiError) -> bytes:
    from app.ws.feeds import json_frame

    return json_frame(_error(req_id, err))


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


def _place_body(conn, data) -> dict:
    """The frame as a ``POST /api/orders`` body, validated (ticks and lots)."""
    from app import trading

    _account(conn)  # refused before anything else, as REST checks the key first
    try:  # exact decimals, as REST parses its body (orjson would give floats)
        body = loads_exact(data)
    except ValueError as exc:
        raise ApiError(400, "INVALID_JSON", f"The frame is not valid JSON: {exc}") from None
    del body["op"], body["reqId"]
    return trading.for_app(conn.app).place_schema.load_order(body)


def _cancel(conn, raw: dict) -> dict:
    account = _account(conn)
    unknown = sorted(set(raw) - {"op", "reqId", "orderId"})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    order_id = raw.get("orderId")
    if not (isinstance(order_id, str) and ORDER_ID.match(order_id)):
        raise ValidationError({"orderId": ["Required: the order's id."]})
    return cancel_order(conn, account, order_id, _request_id(conn))


# -- the service REST uses too (app.trading) --------------------------------------------
def place_orders(conn, account: str, items: list[tuple[dict, str]]) -> list:
    """Per order ``(loaded body, request id)``: the accepted order (or, for a replayed
    clientOrderId, the original) or the ApiError REST answers (409 reuse, 429)."""
    from app import trading

    placed = trading.place(trading.for_app(conn.app), account, [d for d, _ in items],
                           [rid for _, rid in items])
    return [p.error if p.error is not None else p.order for p in placed]


def cancel_order(conn, account: str, order_id: str, request_id: str) -> dict:
    """Journal a cancel as ``DELETE /api/orders/<id>`` does; the order as known now."""
    from app import trading

    desk = trading.for_app(conn.app)
    owner = account if desk.settings.auth_required else None  # app.auth.owner_filter
    trading.cancel(desk, order_id, owner, request_id)
    return trading.order_with_fills(desk, order_id)
