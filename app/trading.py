"""Order entry as a service: validated orders in, outcomes out.

The REST views (``app.api.orders``) and the WebSocket relay call these functions; nothing
here needs a Flask request: what a process provides (its Redis client, the Celery app
that carries the matching task, the settings) comes in a ``Desk``, and who is asking
(account, request id) comes as arguments. Refusals are ``ApiError`` values with REST's
status and code, so every surface answers with the same codes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis
from celery import Celery

from app import metrics
from app.errors import ApiError
from archive import reads as history
from schemas.markets import Market, markets
from schemas.orders import PlaceOrderSchema
from settings import Settings
from store import codec, journal, read
from workers.celery_app import send_wakeup

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Desk:
    """What order entry needs from its process: one per process (``for_app``)."""

    redis: redis.Redis
    celery: Celery
    settings: Settings
    markets: dict[str, Market] = field(init=False)
    # Built once: constructing a marshmallow schema costs more than loading with it.
    place_schema: PlaceOrderSchema = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "markets", markets(self.settings))
        object.__setattr__(self, "place_schema", PlaceOrderSchema(self.settings))


@dataclass
class Placed:
    """One order's outcome: ``status`` 202 (journaled now), 200 (a clientOrderId seen before:
    ``order`` is the original) or the refusal's status with ``error``."""

    status: int
    order: dict | None = None
    error: ApiError | None = None
    sequence: int = 0  # the journal sequence when journaled now (for ?wait=true)


def place(desk: Desk, account: str, orders: list[dict], request_ids: list[str]) -> list[Placed]:
    """Journal validated orders (``PlaceOrderSchema`` loads) of ``account`` in order, one
    round trip, and wake each symbol's matcher once; ``request_ids[i]`` goes with
    ``orders[i]`` into the journal and the worker's log lines."""
    s = desk.settings
    items = [(desk.markets[data["symbol"]], account, data, rid)
             for data, rid in zip(orders, request_ids, strict=True)]
    if len(items) == 1:  # one EVALSHA; a pipeline would add a SCRIPT EXISTS round trip
        results = [journal.accept(desk.redis, *items[0], s.max_open_orders_per_account)]
    else:
        results = journal.accept_many(desk.redis, items, s.max_open_orders_per_account)
    out, wake, accepted = [], {}, {}
    for (market, _, data, _), result in zip(items, results, strict=True):
        if result.outcome == "created":
            kind = (market.symbol, result.order["orderType"])
            accepted[kind] = accepted.get(kind, 0) + 1
            if result.woke:
                wake[market.symbol] = result.sequence
            out.append(Placed(202, result.order, sequence=result.sequence))
        elif result.outcome == "duplicate":
            try:
                out.append(Placed(200, _replayed_order(desk, result.order_id, data)))
            except ApiError as err:
                out.append(Placed(err.status, error=err))
        else:
            err = ApiError(429, "TOO_MANY_OPEN_ORDERS",
                           f"At most {s.max_open_orders_per_account} open orders per account "
                           f"on one market.")
            out.append(Placed(429, error=err))
    metrics.count_accepted(accepted)
    for symbol, sequence in wake.items():
        wake_matcher(desk, symbol, sequence)
    return out


def cancel(desk: Desk, order_id: str, owner: str | None, request_id: str,
           reduce_to: int | None = None) -> journal.CancelRequested:
    """Journal a cancel (or with ``reduce_to`` lots, a reduce) of ``order_id``; ``owner``:
    the account it must belong to (None: any). Raises ``ApiError`` 404/409/400 when there
    is nothing to cancel; the queued command's symbol and sequence otherwise."""
    outcome = journal.request_cancel(desk.redis, order_id, owner, request_id,
                                     reduce_to=reduce_to)
    verb = "CANCELLABLE" if reduce_to is None else "AMENDABLE"
    if outcome.outcome == "not_found" and reduce_to is None and (
            status := history.archived_status(desk.redis, desk.settings, desk.markets,
                                              order_id, owner)):
        raise ApiError(409, "ORDER_NOT_CANCELLABLE", f"The order is already {status}.")
    if outcome.outcome == "not_found":
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    if outcome.outcome == "final":
        raise ApiError(409, f"ORDER_NOT_{verb}", f"The order is already {outcome.status}.")
    if outcome.outcome == "not_lower":
        limit = desk.markets[outcome.symbol].quantity(outcome.quantity)
        raise ApiError(400, "VALIDATION_ERROR", "A reduce must lower the quantity.",
                       {"quantity": [f"Must be below the order's quantity {limit}."]})
    if outcome.woke:
        wake_matcher(desk, outcome.symbol, outcome.sequence)
    return outcome


def order_with_fills(desk: Desk, order_id: str, owner: str | None = None) -> dict:
    """The order's JSON with its fills (Redis first, then the history archive); 404."""
    order = history.order_with_fills(desk.redis, desk.settings, desk.markets, order_id, owner)
    if order is None:
        raise ApiError(404, "ORDER_NOT_FOUND", f"No order {order_id!r}.")
    return order


def wake_matcher(desk: Desk, symbol: str, sequence: int) -> None:
    """Send the matching task; if the broker hiccups the worker's sweep still applies it."""
    try:
        send_wakeup(desk.celery, symbol, sequence)
    except Exception:  # the command is journaled: it is not lost, only later
        log.warning("could not send the matching task for %s #%d", symbol, sequence,
                    exc_info=True)


def _replayed_order(desk: Desk, order_id: str, request_data: dict) -> dict:
    """The original order for a clientOrderId seen before, if this is the same request."""
    h = read.order_hash(desk.redis, order_id)
    if h is not None and not codec.same_request(h, request_data):
        raise ApiError(409, "CLIENT_ORDER_ID_REUSED",
                       f"clientOrderId {request_data['client_order_id']!r} already names "
                       f"another order ({order_id}); nothing placed.",
                       {"clientOrderId": ["Already used for a different order."]})
    return order_with_fills(desk, order_id)


def for_app(app) -> Desk:
    """The app's desk, made on first use in this process (its Redis client is made after
    fork, on first use: ``app.redis_client``)."""
    desk = app.extensions.get("trading")
    if desk is None:
        from app.redis_client import client_for

        desk = app.extensions["trading"] = Desk(client_for(app), app.extensions["celery"],
                                                app.config["SETTINGS"])
    return desk
