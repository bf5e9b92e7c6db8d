"""``GET /api/asyncapi.json``: the AsyncAPI 3 document of the ``/ws`` WebSocket.

Generated, like the OpenAPI document, from marshmallow schemas: the client frames of
``schemas/ws.py`` and the server events of ``schemas/ws_events.py`` (apispec's converter
turns them into JSON Schema), with their examples, the channels, and this node's limits.
It describes the server: ``receive`` operations are frames a client sends, ``send``
operations events the server sends. Every logical channel is the one socket ``/ws``.
"""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify, request

from app.cached import app_cached
from app.ratelimit import config_for
from schemas import ws as frames
from schemas import ws_events as ev
from schemas.market_data import INTERVALS, CandleSchema, TickerSchema
from schemas.orders import BookLevelSchema, OrderSchema, TradeSchema

bp = Blueprint("asyncapi", __name__)

# Client frames: name -> (schema, summary, example).
OPS = {
    "ping": (frames.PingSchema, "Liveness check; answered with pong.", {"op": "ping"}),
    "auth": (frames.AuthSchema, "Authenticate the connection with an API key: order_status "
                                "then carries only that account's orders.",
             {"op": "auth", "apiKey": "key-alice"}),
    "unsubscribe": (frames.SubscriptionSchema, "Stop a subscription (same fields as "
                                               "subscribe).",
                    {"op": "unsubscribe", "channel": "trade", "symbol": "BTC-USD"}),
}
SUBSCRIBE_EXAMPLES = {
    "orderbook": {"op": "subscribe", "channel": "orderbook", "symbol": "BTC-USD"},
    "trade": {"op": "subscribe", "channel": "trade", "symbol": "BTC-USD"},
    "order_status": {"op": "subscribe", "channel": "order_status", "orderId":
                     "ord_3kTqGx0b4mD1vV2s"},
    "ticker": {"op": "subscribe", "channel": "ticker", "symbol": "BTC-USD"},
    "candles": {"op": "subscribe", "channel": "candles", "symbol": "BTC-USD",
                "interval": "1m"},
}
# Logical channel -> (description, the events it brings).
CHANNELS = {
    "orderbook": ("First a snapshot of the whole book, then updates: each changed level with "
                  "its new total (0: gone). Updates published together are merged into one "
                  "(each level's last total). prevSequence is the sequence of the previous "
                  "orderbook message of the symbol: a client holding another one missed "
                  "something and subscribes again; so does one whose book gives another "
                  "checksum.", ("orderbook_snapshot", "orderbook_update")),
    "trade": ("Every trade of the symbol exactly once, in trade sequence order.", ("trade",)),
    "order_status": ("Every change of an order (accepted, each fill, cancel, reject), by "
                     "symbol or by orderId; after auth only the account's own orders (and "
                     "auth is needed first when the node requires API keys).",
                     ("order_status",)),
    "ticker": ("The 24 h ticker (as GET /api/ticker), at once on subscribing, then after "
               "trades: at most 4 a second per symbol.", ("ticker",)),
    "candles": ("Candles of one interval (" + ", ".join(INTERVALS) + "; as GET "
                "/api/candles): the current candle at once, then whenever it changes, at "
                "most 4 a second per symbol and interval; when a trade opens a new bucket, "
                "the candle it closed once more with closed: true.", ("candles",)),
}
COMPONENT_SCHEMAS = {  # nested ones first: apispec names a nested schema on first sight
    "BookLevel": BookLevelSchema, "LevelChange": ev.LevelChangeSchema, "Trade": TradeSchema,
    "Order": OrderSchema, "Candle": CandleSchema, "Ticker": TickerSchema,
    "Subscription": frames.SubscriptionSchema, "Ping": frames.PingSchema,
    "Auth": frames.AuthSchema,
    **{_name: _schema for _name, (_schema, _, _) in
       {"Subscribed": ev.EVENTS["subscribed"], "Pong": ev.EVENTS["pong"],
        "Authenticated": ev.EVENTS["authenticated"], "ErrorEvent": ev.EVENTS["error"],
        "OrderbookEvent": ev.EVENTS["orderbook_update"], "TradeEvent": ev.EVENTS["trade"],
        "OrderStatusEvent": ev.EVENTS["order_status"], "TickerEvent": ev.EVENTS["ticker"],
        "CandlesEvent": ev.EVENTS["candles"]}.items()},
}


def _schema_name(schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    for name, known in COMPONENT_SCHEMAS.items():
        if known is cls:
            return name
    raise KeyError(cls.__name__)


def _json_schemas() -> dict:
    plugin = MarshmallowPlugin()
    spec = APISpec(title="ws", version="1", openapi_version="3.1.0", plugins=[plugin])
    for name, schema in COMPONENT_SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    return spec.to_dict()["components"]["schemas"]


def _limits(app) -> str:
    from app.ws import DEFAULTS, MAX_FRAME_BYTES

    config = config_for(app)
    text = (f"A client frame is at most {MAX_FRAME_BYTES // 1024} KiB (FRAME_TOO_LARGE); "
            f"at most {DEFAULTS['ws_max_subscriptions']} subscriptions per connection "
            f"(TOO_MANY_SUBSCRIPTIONS); a client with {DEFAULTS['ws_queue_max']} "
            "undelivered messages is closed with 1008 'slow consumer'.")
    if config.enabled:
        frame = config.ws_frames[0]
        text += (f" At most {frame.amount} frames per {frame.get_expiry()} s per connection: "
                 "the first frame past it gets RATE_LIMITED, later ones are ignored, twice the "
                 "limit closes the socket with 1008 'rate limit exceeded'. At most "
                 f"{config.ws_connections} connections per client IP (TOO_MANY_CONNECTIONS, "
                 "then 1008 'too many connections').")
    return text


def _message(name: str, schema, summary: str, example: dict) -> dict:
    return {"name": name, "summary": summary, "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{_schema_name(schema)}"},
            "examples": [{"name": name, "payload": example}]}


def build_asyncapi(app, host: str = "localhost:3000") -> dict:
    messages = {f"op_{name}": _message(name, schema, summary, example)
                for name, (schema, summary, example) in OPS.items()}
    for channel, example in SUBSCRIBE_EXAMPLES.items():
        messages[f"subscribe_{channel}"] = _message(
            f"subscribe {channel}", frames.SubscriptionSchema,
            f"Subscribe to {channel}" + (" of one interval." if channel == "candles" else "."),
            example)
    for name, (schema, summary, example) in ev.EVENTS.items():
        messages[name] = _message(name, schema, summary, example)

    def refs(channel: str, names) -> dict:
        return {n: {"$ref": f"#/components/messages/{n}"} for n in names}

    control = ["op_ping", "op_auth", "op_unsubscribe", "pong", "authenticated", "subscribed",
               "error"]
    channels = {"control": {"address": "/ws", "title": "Control frames",
                            "description": "ping, auth and unsubscribe, their answers, and "
                                           "the error event any refused frame gets.",
                            "messages": refs("control", control)}}
    operations = {}
    for op in ("ping", "auth", "unsubscribe"):
        reply = {"ping": ["pong"], "auth": ["authenticated", "error"],
                 "unsubscribe": ["subscribed", "error"]}[op]
        operations[op] = {
            "action": "receive", "channel": {"$ref": "#/channels/control"},
            "summary": OPS[op][1],
            "messages": [{"$ref": f"#/channels/control/messages/op_{op}"}],
            "reply": {"channel": {"$ref": "#/channels/control"},
                      "messages": [{"$ref": f"#/channels/control/messages/{m}"}
                                   for m in reply]}}
    for channel, (description, events) in CHANNELS.items():
        names = [f"subscribe_{channel}", "subscribed", "error", *events]
        channels[channel] = {"address": "/ws", "title": channel, "description": description,
                             "messages": refs(channel, names)}
        operations[f"subscribe_{channel}"] = {
            "action": "receive", "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"Subscribe to {channel}.",
            "messages": [{"$ref": f"#/channels/{channel}/messages/subscribe_{channel}"}],
            "reply": {"channel": {"$ref": f"#/channels/{channel}"},
                      "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"}
                                   for m in ("subscribed", "error")]}}
        operations[f"send_{channel}"] = {
            "action": "send", "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"{channel} events.",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{e}"} for e in events]}
    symbols = ", ".join(app.config["SETTINGS"].symbols)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Order matching service WebSocket", "version": "1.0.0",
                 "description": "One plain WebSocket, JSON text frames. A client sends ops "
                                "({\"op\": ...}); the server answers and streams events "
                                "({\"event\": ...}). A bad frame gets an error event and the "
                                f"socket stays open. Symbols: {symbols}. Limits: "
                                + _limits(app)},
        "defaultContentType": "application/json",
        "servers": {"node": {"host": host, "protocol": "ws", "pathname": "/ws",
                             "description": "This web node (wss behind a TLS proxy)."}},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _json_schemas(), "messages": messages},
    }


def asyncapi_doc() -> dict:
    app = current_app._get_current_object()
    return app_cached(app, "asyncapi", lambda: build_asyncapi(app))


@bp.get("/api/asyncapi.json")
def asyncapi_json():
    doc = dict(asyncapi_doc())
    doc["servers"] = {"node": {**doc["servers"]["node"], "host": request.host}}
    return jsonify(doc)
