"""Order and trade shapes on the wire: request validation in, exact JSON out.

camelCase on the wire (``data_key``), snake_case and integers inside. The request
schemas turn decimals into ticks and lots for one market; the ``*_json`` functions
write stored or live state back as the contract's JSON (fast: they run for every
order and trade the service publishes).
"""

from __future__ import annotations

import re
import time
from decimal import Decimal, InvalidOperation

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    missing,
    post_load,
    validate,
    validates_schema,
)

from engine.types import (
    STOP_TYPES,
    OrderType,
    Reason,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
)
from schemas.markets import Market, UnknownMarket, get_market, markets
from settings import Settings

# A sign is accepted so "-1" meets the same "> 0" rule as the JSON number -1.
_DECIMAL_TEXT = re.compile(r"^-?[0-9]{1,20}(\.[0-9]{1,20})?$")
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GTD_MIN_AHEAD_MS = 1_000
GTD_MAX_AHEAD_MS = 365 * 86_400_000


class ExactDecimal(fields.Field):
    """A JSON number or a decimal string, kept exact as ``Decimal`` (never a float)."""

    default_error_messages = {"invalid": "Must be a decimal number (JSON number or string)."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or value is None:
            raise self.make_error("invalid")
        if isinstance(value, (int, Decimal)):
            number = Decimal(value)
        elif isinstance(value, float):  # only if a caller parsed floats: keep what was sent
            number = Decimal(repr(value))
        elif isinstance(value, str) and _DECIMAL_TEXT.match(value.strip()):
            number = Decimal(value.strip())
        else:
            raise self.make_error("invalid")
        try:
            if not number.is_finite():
                raise self.make_error("invalid")
        except InvalidOperation:
            raise self.make_error("invalid") from None
        return number


class StrictBoolean(fields.Boolean):
    """JSON true/false only: ``1``/``0`` are not booleans (``1 in {True}`` is, in Python)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def _enum(enum_cls, **kwargs):
    return fields.String(validate=validate.OneOf([e.value for e in enum_cls]), **kwargs)


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class PlaceOrderSchema(StrictSchema):
    """``POST /api/orders`` body. Loads to a dict of integers for one market."""

    symbol = fields.String(load_default=None)
    type = _enum(Side, load_default=None, metadata={"description": "BUY or SELL (the side)"})
    side = _enum(Side, load_default=None)
    order_type = _enum(OrderType, data_key="orderType", load_default=OrderType.LIMIT.value)
    price = ExactDecimal(load_default=None, allow_none=True)
    quantity = ExactDecimal(required=True)
    time_in_force = _enum(TimeInForce, data_key="timeInForce", load_default=None)
    post_only = StrictBoolean(data_key="postOnly", load_default=False)
    client_order_id = fields.String(data_key="clientOrderId", load_default=None,
                                    validate=validate.Regexp(CLIENT_ORDER_ID, error=(
                                        "Must be 1 to 64 characters, each a letter A-Z or "
                                        "a-z, a digit, '_' or '-' (pattern {regex}).")))
    self_trade_prevention = _enum(SelfTradePrevention, data_key="selfTradePrevention",
                                  load_default=SelfTradePrevention.NONE.value)
    stop_price = ExactDecimal(data_key="stopPrice", load_default=None, allow_none=True,
                              metadata={"description": "STOP_LIMIT / STOP_MARKET only: a BUY "
                                        "triggers when the last trade >= it, a SELL when <=."})
    expire_time = fields.Integer(data_key="expireTime", load_default=None, allow_none=True,
                                 strict=True, metadata={
                                     "description": "GTD only: ms since epoch, 1 s to 365 "
                                                    "days ahead."})

    def __init__(self, settings: Settings | None = None, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings or Settings()
        self.markets = markets(self.settings)  # looked up per order: built once
        # For load_order: each wire key's attribute and field, and what a missing one loads.
        self._by_key = {(f.data_key or name): (name, f) for name, f in self.load_fields.items()}
        self._defaults = {name: f.load_default for name, f in self.load_fields.items()
                          if f.load_default is not missing}
        self._required = frozenset(key for key, (_, f) in self._by_key.items() if f.required)
        if any(callable(v) for v in self._defaults.values()):  # made per load: not here
            self._by_key = {}

    def load_order(self, data: dict) -> dict:
        """``load(data)`` for a request body that is valid: each field's own
        ``deserialize`` (its type check and validators), then the same schema rules and
        post-load, without marshmallow's per-load machinery (error store, hook lookup,
        a closure per field). Anything else, an unknown key, a missing required field or any
        error at all, goes through ``load`` itself, which answers exactly as before (the
        same errors and messages: this path never builds an error).
        Figure: 22.6 -> 9.2 us per order (micro-loop of bench/load.lua's order mix): the
        bulk of the batch path's web CPU per order (``flock /tmp/heavy.lock .venv/bin/python
        -m bench.load --mode batch --seconds 10``, README "Cost per order")."""
        try:
            out = dict(self._defaults)
            by_key = self._by_key
            for key, value in data.items():
                name, field = by_key[key]
                out[name] = field.deserialize(value, key, data)
            if not self._required <= data.keys():
                raise KeyError("a required field")
            self._rules(out)
            return self._to_integers(out)
        except Exception:  # noqa: BLE001 - marshmallow's own load decides (and words it)
            return self.load(data)

    @validates_schema(skip_on_field_errors=False)
    def _rules(self, data, **kwargs):
        """Cross-field rules. Run even when a field failed, so one answer names every
        problem (``{}`` hears about quantity, side and price at once); rules about a field
        that failed on its own are skipped (``data`` lacks it)."""
        errors: dict[str, list[str]] = {}

        def bad(field, message):
            errors.setdefault(field, []).append(message)

        side, typ = data.get("side"), data.get("type")
        if side is None and typ is None and "side" in data and "type" in data:
            for name in ("type", "side"):
                bad(name, "Missing data for required field: give type (or side), BUY or SELL.")
        if side and typ and side != typ:
            bad("side", "'type' and 'side' disagree.")
        if "order_type" in data and "time_in_force" in data and "price" in data:
            try:
                self._order_type_rules(data, data["order_type"], data["time_in_force"])
            except ValidationError as err:
                for field, messages in err.normalized_messages().items():
                    for message in messages:
                        bad(field, message)
        if errors:
            raise ValidationError(errors)

    def _order_type_rules(self, data, order_type, tif):
        if order_type == OrderType.MARKET:
            if data.get("price") is not None:
                raise ValidationError("A MARKET order takes no price.", "price")
            if tif == TimeInForce.GTC:
                raise ValidationError("A MARKET order is IOC or FOK.", "timeInForce")
        elif data.get("price") is None and order_type != OrderType.STOP_MARKET:
            raise ValidationError(f"A {order_type} order needs a price.", "price")
        if data.get("post_only") and (order_type != OrderType.LIMIT or tif not in (None, "GTC")):
            raise ValidationError("postOnly is for GTC LIMIT orders only.", "postOnly")
        if "stop_price" in data and "expire_time" in data:
            self._stop_and_gtd_rules(data, order_type, tif)

    @staticmethod
    def _stop_and_gtd_rules(data, order_type, tif):
        stop = order_type in STOP_TYPES
        if stop and data.get("stop_price") is None:
            raise ValidationError(f"A {order_type} order needs a stopPrice.", "stopPrice")
        if not stop and data.get("stop_price") is not None:
            raise ValidationError("stopPrice is for STOP_LIMIT and STOP_MARKET orders only.",
                                  "stopPrice")
        if order_type == OrderType.STOP_MARKET and data.get("price") is not None:
            raise ValidationError("A STOP_MARKET order takes no price.", "price")
        if stop and tif not in (None, "GTC"):
            raise ValidationError("A stop order is GTC: it waits until triggered, then "
                                  "enters as a GTC LIMIT or an IOC MARKET.", "timeInForce")
        expire = data.get("expire_time")
        if tif == "GTD":
            if order_type != OrderType.LIMIT:
                raise ValidationError("GTD is for LIMIT orders only.", "timeInForce")
            if expire is None:
                raise ValidationError("A GTD order needs an expireTime (ms since epoch).",
                                      "expireTime")
            now = int(time.time() * 1000)
            if not now + GTD_MIN_AHEAD_MS <= expire <= now + GTD_MAX_AHEAD_MS:
                raise ValidationError("expireTime must be at least 1 s and at most 365 days "
                                      "ahead of the server time.", "expireTime")
        elif expire is not None:
            raise ValidationError("expireTime is for timeInForce GTD only.", "expireTime")

    @post_load
    def _to_integers(self, data, **kwargs):
        try:
            market = get_market(self.settings, data["symbol"], self.markets)
        except UnknownMarket:
            raise ValidationError(f"Unknown symbol {data['symbol']!r}.", "symbol") from None
        errors = {}
        price = None
        if data["price"] is not None:
            try:
                price = market.to_ticks(data["price"])
            except ValueError as exc:
                errors["price"] = [f"Price {exc}."]
        stop_price = None
        if data["stop_price"] is not None:
            try:
                stop_price = market.to_ticks(data["stop_price"])
            except ValueError as exc:
                errors["stopPrice"] = [f"Stop price {exc}."]
        try:
            quantity = market.to_lots(data["quantity"])
        except ValueError as exc:
            errors["quantity"] = [f"Quantity {exc}."]
        if errors:
            raise ValidationError(errors)
        order_type = OrderType(data["order_type"])
        default_tif = TimeInForce.IOC if order_type is OrderType.MARKET else TimeInForce.GTC
        return {
            "symbol": market.symbol,
            "side": Side(data["side"] or data["type"]),
            "order_type": order_type,
            "time_in_force": TimeInForce(data["time_in_force"] or default_tif),
            "price": price,
            "quantity": quantity,
            "post_only": data["post_only"],
            "client_order_id": data["client_order_id"],
            "self_trade_prevention": SelfTradePrevention(data["self_trade_prevention"]),
            "stop_price": stop_price,
            "expire_time": data["expire_time"],
            "replaces_order_id": None,
        }


class ReduceSchema(StrictSchema):
    """``PATCH /api/orders/<id>`` body: the new total quantity (lots checked by the view,
    which knows the order's market)."""

    quantity = ExactDecimal(required=True, metadata={
        "description": "The new total quantity: below the current one, a lot multiple, > 0."})


class BatchSchema(StrictSchema):
    orders = fields.List(fields.Raw(), required=True,
                         validate=validate.Length(min=1, max=100))


def _limit(default: int, maximum: int = 1000):
    return fields.Integer(load_default=default, strict=False,
                          validate=validate.Range(min=1, max=maximum))


class SymbolQuery(StrictSchema):
    symbol = fields.String(load_default=None)


class NoQuery(StrictSchema):
    """Endpoints that take no query argument: any one is a 400."""


class WaitQuery(StrictSchema):
    wait = fields.Boolean(load_default=False, metadata={
        "description": "true: wait for the matcher to process the command before answering."})
    timeout = fields.Integer(load_default=5000, validate=validate.Range(min=0, max=30000),
                             metadata={"description": "With wait=true: how long to wait for "
                                                      "the matcher, in ms."})


class OrdersQuery(SymbolQuery):
    client_order_id = fields.String(data_key="clientOrderId", load_default=None, metadata={
        "description": "Only the caller's order with this clientOrderId."})
    status = fields.String(load_default=None)
    type = _enum(Side, load_default=None)
    side = _enum(Side, load_default=None)
    limit = _limit(100)
    cursor = fields.String(load_default=None)

    @post_load
    def _statuses(self, data, **kwargs):
        if data["status"] is not None:
            statuses = [s.strip() for s in data["status"].split(",") if s.strip()]
            bad = [s for s in statuses if s not in Status.__members__]
            if bad or not statuses:
                named = ", ".join(repr(b) for b in bad) or "(empty)"
                raise ValidationError(f"Unknown status {named}: use one or more of "
                                      f"{', '.join(Status.__members__)}, comma-separated "
                                      f"(upper case).", "status")
            data["status"] = set(statuses)
        if data["side"] and data["type"] and data["side"] != data["type"]:
            raise ValidationError("'type' and 'side' disagree.", "side")
        data["side"] = data["side"] or data["type"]
        return data


class TradesQuery(SymbolQuery):
    limit = _limit(100)
    cursor = fields.String(load_default=None)


class LatestTradesQuery(SymbolQuery):
    limit = _limit(20)


class BookQuery(SymbolQuery):
    levels = _limit(50)


# ---------------------------------------------------------------- output


def order_json(market: Market, *, id, account_id, side, order_type, time_in_force, post_only,
               price, quantity, filled, notional, status, reason, sequence, timestamp,
               updated_at, client_order_id, self_trade_prevention, stop_price=None,
               expire_time=None, replaces_order_id=None) -> dict:
    """The contract's Order object from integer state (all keyword arguments)."""
    final = status in ("FILLED", "CANCELLED", "REJECTED")
    return {
        "id": id,
        "clientOrderId": client_order_id or None,
        "accountId": account_id,
        "symbol": market.symbol,
        "type": side,
        "side": side,
        "orderType": order_type,
        "timeInForce": time_in_force,
        "postOnly": post_only,
        "selfTradePrevention": self_trade_prevention,
        "price": market.price(price),
        "stopPrice": None if stop_price is None else market.price(stop_price),
        "expireTime": expire_time,
        "replacesOrderId": replaces_order_id or None,
        "quantity": market.quantity(quantity),
        "filledQuantity": market.quantity(filled),
        "remainingQuantity": 0.0 if final else market.quantity(quantity - filled),
        "averagePrice": market.average_price(notional, filled),
        "status": status,
        "reason": reason or None,
        "sequence": sequence,
        "timestamp": timestamp,
        "updatedAt": updated_at,
    }


def trade_json(market: Market, *, sequence, price, quantity, maker_order_id, taker_order_id,
               taker_side, timestamp) -> dict:
    buy, sell = ((taker_order_id, maker_order_id) if taker_side == "BUY"
                 else (maker_order_id, taker_order_id))
    return {
        "id": f"trd_{market.symbol}_{sequence}",
        "symbol": market.symbol,
        "buyOrderId": buy,
        "sellOrderId": sell,
        "makerOrderId": maker_order_id,
        "takerOrderId": taker_order_id,
        "takerSide": taker_side,
        "price": market.price(price),
        "quantity": market.quantity(quantity),
        "sequence": sequence,
        "timestamp": timestamp,
    }


# Response schemas: documentation of the JSON above for /api/openapi.json.


class OrderSchema(Schema):
    id = fields.String(metadata={"example": "ord_3kTqGx0b4mD1vV2s"})
    clientOrderId = fields.String(allow_none=True)
    accountId = fields.String()
    symbol = fields.String(metadata={"example": "BTC-USD"})
    type = _enum(Side)
    side = _enum(Side)
    orderType = _enum(OrderType)
    timeInForce = _enum(TimeInForce)
    postOnly = fields.Boolean()
    selfTradePrevention = _enum(SelfTradePrevention)
    price = fields.Float(allow_none=True, metadata={"example": 101.25})
    stopPrice = fields.Float(allow_none=True, metadata={"description": "Stop orders only."})
    expireTime = fields.Integer(allow_none=True, metadata={"description": "GTD only (ms)."})
    replacesOrderId = fields.String(allow_none=True, metadata={
        "description": "Set on an order placed by a replace: the order it replaced."})
    quantity = fields.Float()
    filledQuantity = fields.Float()
    remainingQuantity = fields.Float()
    averagePrice = fields.Float(allow_none=True)
    status = _enum(Status)
    reason = _enum(Reason, allow_none=True)
    sequence = fields.Integer()
    timestamp = fields.Integer()
    updatedAt = fields.Integer()


class TradeSchema(Schema):
    id = fields.String(metadata={"example": "trd_BTC-USD_77"})
    symbol = fields.String()
    buyOrderId = fields.String()
    sellOrderId = fields.String()
    makerOrderId = fields.String()
    takerOrderId = fields.String()
    takerSide = _enum(Side)
    price = fields.Float()
    quantity = fields.Float()
    sequence = fields.Integer()
    timestamp = fields.Integer()


class OrderWithFillsSchema(OrderSchema):
    fills = fields.List(fields.Nested(TradeSchema))


# Request and envelope shapes that exist only for /api/openapi.json (the views build the
# JSON directly; these document it).


class BatchRequestSchema(Schema):
    orders = fields.List(fields.Nested(PlaceOrderSchema), required=True,
                         validate=validate.Length(min=1, max=100),
                         metadata={"description": "1 to 100 orders, accepted in array order."})


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "VALIDATION_ERROR"})
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", keys=fields.String(),
                          values=fields.List(fields.String()),
                          metadata={"description": "Per-field messages (validation errors)."})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class BatchResultsSchema(Schema):
    results = fields.List(fields.Dict(), metadata={
        "description": "One entry per submitted order, in the same order: an Order, or an "
                       "Error object ({\"error\": {...}}) for an item that was rejected."})


class CancelAllRequestsSchema(Schema):
    requests = fields.List(fields.Dict(), metadata={
        "description": "One queued cancel-all command per symbol: {\"symbol\", \"sequence\"}."})


class CancelAllQuery(StrictSchema):
    symbol = fields.String(load_default=None, metadata={
        "description": "The market; every market when absent."})
    wait = fields.Boolean(load_default=False)
    timeout = fields.Integer(load_default=5000, validate=validate.Range(min=0, max=30000))


class ClientIdQuery(WaitQuery):
    symbol = fields.String(load_default=None)


class ValidSchema(Schema):
    valid = fields.Boolean(metadata={"example": True})


class OrderListSchema(Schema):
    orders = fields.List(fields.Nested(OrderSchema))
    nextCursor = fields.String(allow_none=True, metadata={
        "description": "Pass as `cursor` for the next (older) page; null on the last page."})


class TradeListSchema(Schema):
    trades = fields.List(fields.Nested(TradeSchema))
    nextCursor = fields.String(allow_none=True)


class LatestTradesSchema(Schema):
    trades = fields.List(fields.Nested(TradeSchema))


class BookLevelSchema(Schema):
    price = fields.Float(metadata={"example": 101.25})
    quantity = fields.Float(metadata={"description": "Total resting quantity at the price."})
    orders = fields.Integer(metadata={"description": "Resting orders at the price."})


class OrderBookSchema(Schema):
    symbol = fields.String()
    sequence = fields.Integer(metadata={"description": "Last journal sequence reflected."})
    timestamp = fields.Integer()
    bids = fields.List(fields.Nested(BookLevelSchema), metadata={"description": "Best first."})
    asks = fields.List(fields.Nested(BookLevelSchema), metadata={"description": "Best first."})
    bestBid = fields.Float(allow_none=True)
    bestAsk = fields.Float(allow_none=True)
    spread = fields.Float(allow_none=True)
    midPrice = fields.Float(allow_none=True)


class DepthLevelSchema(Schema):
    price = fields.Float()
    quantity = fields.Float()
    total = fields.Float(metadata={"description": "Cumulative quantity from the best price."})


class DepthSchema(Schema):
    symbol = fields.String()
    sequence = fields.Integer()
    bids = fields.List(fields.Nested(DepthLevelSchema))
    asks = fields.List(fields.Nested(DepthLevelSchema))


class MarketSummarySchema(Schema):
    symbol = fields.String()
    tickSize = fields.Float()
    lotSize = fields.Float()
    lastPrice = fields.Float(allow_none=True)
    bestBid = fields.Float(allow_none=True)
    bestAsk = fields.Float(allow_none=True)
    volume24h = fields.Float()


class MarketsSchema(Schema):
    markets = fields.List(fields.Nested(MarketSummarySchema))


class SymbolHealthSchema(Schema):
    accepted = fields.Integer(metadata={"description": "Last accepted journal sequence."})
    applied = fields.Integer(metadata={"description": "Last sequence the matcher committed."})
    lag = fields.Integer()
    heartbeatAgeMs = fields.Integer(allow_none=True)
    ok = fields.Boolean()
    problems = fields.List(fields.String())


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    readOnly = fields.Boolean()
    redis = fields.Dict()
    symbols = fields.Dict(keys=fields.String(), values=fields.Nested(SymbolHealthSchema))
