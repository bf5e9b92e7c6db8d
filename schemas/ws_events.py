"""What the ``/ws`` server sends (the client frames are in ``schemas/ws.py``).

These marshmallow schemas describe the events app.ws and app.market_feed write; the
AsyncAPI document (``app/api/asyncapi.py``, ``GET /api/asyncapi.json``) is generated
from them and from the client frame schemas, with the ``EXAMPLES`` below, which the
tests load through these very schemas.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.market_data import CandleSchema, TickerSchema
from schemas.orders import BookLevelSchema, OrderSchema, TradeSchema


def _event(name: str, description: str = ""):
    return fields.String(required=True, validate=validate.OneOf([name]),
                         metadata={"description": description or f"Always {name!r}."})


class SubscribedSchema(Schema):
    event = fields.String(required=True, validate=validate.OneOf(["subscribed",
                                                                  "unsubscribed"]))
    channel = fields.String(required=True)
    symbol = fields.String()
    orderId = fields.String()
    interval = fields.String()


class PongSchema(Schema):
    event = _event("pong")


class AuthenticatedSchema(Schema):
    event = _event("authenticated")
    accountId = fields.String(required=True)


class ErrorEventSchema(Schema):
    event = _event("error")
    code = fields.String(required=True, metadata={
        "description": "BAD_FRAME, UNKNOWN_OP, UNKNOWN_CHANNEL, UNKNOWN_SYMBOL, AUTH_FAILED, "
                       "TOO_MANY_SUBSCRIPTIONS, FRAME_TOO_LARGE, UNAVAILABLE, RATE_LIMITED, "
                       "TOO_MANY_CONNECTIONS"})
    message = fields.String(required=True)
    reqId = fields.String()
    fields_ = fields.Dict(data_key="fields")


class LevelChangeSchema(BookLevelSchema):
    side = fields.String(validate=validate.OneOf(["BUY", "SELL"]))


class OrderbookSchema(Schema):
    event = _event("orderbook")
    type = fields.String(required=True, validate=validate.OneOf(["snapshot", "update"]))
    symbol = fields.String(required=True)
    sequence = fields.Integer(required=True, metadata={
        "description": "The journal sequence of the book this message brings you to."})
    prevSequence = fields.Integer(metadata={
        "description": "update only: the sequence of the previous orderbook message of the "
                       "symbol; if it is not the one you hold, subscribe again."})
    bids = fields.List(fields.Nested(BookLevelSchema), metadata={
        "description": "snapshot only: every bid level, highest first."})
    asks = fields.List(fields.Nested(BookLevelSchema), metadata={
        "description": "snapshot only: every ask level, lowest first."})
    changes = fields.List(fields.Nested(LevelChangeSchema), metadata={
        "description": "update only: each changed level's new total (0: gone)."})
    checksum = fields.Integer(required=True, metadata={
        "description": "CRC32 (unsigned) of the best 25 bids then the best 25 asks of the "
                       "book after this message, each 'price:quantity' written as in the "
                       "JSON, joined with '|'."})


class TradeEventSchema(TradeSchema):
    event = _event("trade")


class OrderStatusSchema(OrderSchema):
    event = _event("order_status")


class TickerEventSchema(TickerSchema):
    event = _event("ticker")


class CandlesEventSchema(Schema):
    event = _event("candles")
    symbol = fields.String(required=True)
    interval = fields.String(required=True)
    closed = fields.Boolean(required=True, metadata={
        "description": "true once, for the final state of a candle a new bucket closed."})
    candle = fields.Nested(CandleSchema, required=True)


_TRADE = {"id": "trd_BTC-USD_77", "symbol": "BTC-USD", "buyOrderId": "ord_b",
          "sellOrderId": "ord_s", "makerOrderId": "ord_s", "takerOrderId": "ord_b",
          "takerSide": "BUY", "price": 101.25, "quantity": 0.5, "sequence": 77,
          "timestamp": 1732400000005}
_ORDER = {"id": "ord_3kTqGx0b4mD1vV2s", "clientOrderId": "abc-1", "accountId": "alice",
          "symbol": "BTC-USD", "type": "BUY", "side": "BUY", "orderType": "LIMIT",
          "timeInForce": "GTC", "postOnly": False, "selfTradePrevention": "NONE",
          "price": 101.25, "quantity": 2.5, "filledQuantity": 1.0, "remainingQuantity": 1.5,
          "averagePrice": 101.25, "status": "PARTIAL", "reason": None, "sequence": 1234,
          "timestamp": 1732400000000, "updatedAt": 1732400000012}

# name -> (schema, summary, example); the server's events.
EVENTS = {
    "subscribed": (SubscribedSchema, "Subscription acknowledged (also 'unsubscribed').",
                   {"event": "subscribed", "channel": "candles", "symbol": "BTC-USD",
                    "interval": "1m"}),
    "pong": (PongSchema, "Answer to ping.", {"event": "pong"}),
    "authenticated": (AuthenticatedSchema, "Answer to auth.",
                      {"event": "authenticated", "accountId": "alice"}),
    "error": (ErrorEventSchema, "A frame was refused; the socket stays open (unless a close "
                                "follows: flood, too many connections).",
              {"event": "error", "code": "RATE_LIMITED",
               "message": "At most 20 frames per 1 s on a connection: frames past it are "
                          "ignored, and a connection that keeps sending is closed."}),
    "orderbook_snapshot": (OrderbookSchema, "The whole book, first after subscribing.",
                           {"event": "orderbook", "type": "snapshot", "symbol": "BTC-USD",
                            "sequence": 41,
                            "bids": [{"price": 101.2, "quantity": 3.0, "orders": 2}],
                            "asks": [{"price": 101.5, "quantity": 1.0, "orders": 1}],
                            "checksum": 559542313}),
    "orderbook_update": (OrderbookSchema, "Changed levels with their new totals.",
                         {"event": "orderbook", "type": "update", "symbol": "BTC-USD",
                          "sequence": 44, "prevSequence": 41,
                          "changes": [{"side": "BUY", "price": 101.2, "quantity": 0.0,
                                       "orders": 0}],
                          "checksum": 2535244022}),
    "trade": (TradeEventSchema, "Every trade once, in trade sequence order.",
              {"event": "trade", **_TRADE}),
    "order_status": (OrderStatusSchema, "Every change of an order.",
                     {"event": "order_status", **_ORDER}),
    "ticker": (TickerEventSchema, "The 24 h ticker after trades, at most 4 a second.",
               {"event": "ticker", "symbol": "BTC-USD", "lastPrice": 101.25,
                "bestBid": 101.2, "bestAsk": 101.5, "open24h": 99.0, "high24h": 102.0,
                "low24h": 98.5, "volume24h": 12.5, "quoteVolume24h": 1251.3,
                "priceChange": 2.25, "priceChangePercent": 2.27, "trades24h": 40}),
    "candles": (CandlesEventSchema, "The current candle when it changed, at most 4 a second "
                                    "per symbol and interval.",
                {"event": "candles", "symbol": "BTC-USD", "interval": "1m", "closed": False,
                 "candle": {"time": 1732399980000, "open": 101.0, "high": 101.5,
                            "low": 100.9, "close": 101.25, "volume": 3.5,
                            "quoteVolume": 354.1, "trades": 7}}),
}
