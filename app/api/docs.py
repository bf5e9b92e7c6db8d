"""The API's own documentation: ``GET /api/openapi.json`` and a human page, ``GET /api/docs``.

The OpenAPI 3 document is generated with apispec's MarshmallowPlugin from the schemas
in ``schemas/orders.py`` (request bodies, query strings, responses), once per app. The
page is rendered on the server from that document: plain HTML and inline CSS, no
script and nothing fetched from elsewhere (it must work offline).
"""

from __future__ import annotations

import html
import json
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, current_app, jsonify

from app.cached import app_cached
from schemas import market_data as md
from schemas import orders as s

bp = Blueprint("docs", __name__)

_ERRORS = {
    "400": "Invalid request (validation error, bad JSON, bad query argument or cursor).",
    "401": "Missing or invalid X-API-Key (when auth is required).",
    "403": "Write on a read-only node (READ_ONLY_NODE).",
    "404": "Not found.",
    "405": "Method not allowed.",
    "409": "Conflict (ORDER_NOT_CANCELLABLE, ORDER_NOT_AMENDABLE, ORDER_NOT_REPLACEABLE, "
           "CLIENT_ORDER_ID_REUSED).",
    "413": "Body too large.",
    "415": "Body is not application/json.",
    "429": "Rate limited (RATE_LIMITED, with Retry-After) or too many open orders for the "
           "account on this market (TOO_MANY_OPEN_ORDERS; the cap is per account and "
           "symbol).",
    "503": "The store is unreachable or the matcher is not ready.",
}

_ORDER_ID = {"in": "path", "name": "order_id", "required": True, "schema": {"type": "string"},
             "description": "The server-assigned order id (`ord_...`)."}
_CLIENT_ORDER_ID = {"in": "path", "name": "client_order_id", "required": True,
                    "schema": {"type": "string"}, "description": "The caller's clientOrderId."}
_SYMBOL_ARG = {"in": "query", "name": "symbol", "required": False, "schema": {"type": "string"},
               "description": "The order's market."}
_WRITE_ERRORS = ("400", "401", "403", "404", "409", "413", "415", "503")


def _json(schema, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict, *, query=None, path_params=(), body=None,
        errors=("400",), description: str = "") -> dict:
    op = {"summary": summary, "responses": dict(responses)}
    if description:
        op["description"] = description
    params = list(path_params)
    if query is not None:
        params.append({"in": "query", "schema": query})
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    for code in errors:
        op["responses"][code] = _json("Error", _ERRORS[code])
    return op


# (path, method, operation): the public contract, api.md section 3.
OPERATIONS = [
    ("/api/orders", "post", _op(
        "Place an order",
        {"202": _json("Order", "Accepted and journaled: status PENDING."),
         "201": _json("OrderWithFills", "With wait=true: processed by the matcher, with fills."),
         "200": _json("OrderWithFills", "The clientOrderId was seen before: the original "
                                        "order; nothing placed.")},
        query=s.WaitQuery, body=s.PlaceOrderSchema,
        errors=("400", "401", "403", "413", "415", "429", "503"),
        description="`type` or `side` names the side; prices and quantities are JSON numbers "
                    "or decimal strings, exact multiples of the market's tickSize/lotSize. "
                    "With `wait=true` the reply waits up to `timeout` ms for the matcher and "
                    "falls back to 202 PENDING.")),
    ("/api/orders/batch", "post", _op(
        "Place up to 100 orders",
        {"202": _json("BatchResults", "One result per order, in array order.")},
        body=s.BatchRequestSchema, errors=("400", "401", "403", "413", "415", "503"),
        description="Each order is validated and accepted on its own, in array order.")),
    ("/api/orders", "get", _op(
        "List the caller's orders, newest first",
        {"200": _json("OrderList", "A page of orders.")}, query=s.OrdersQuery,
        errors=("400", "401", "503"),
        description="`status` is a comma-separated list. Follow `nextCursor` for older pages.")),
    ("/api/orders/{order_id}", "get", _op(
        "One order, with its fills",
        {"200": _json("OrderWithFills", "The order.")}, path_params=[_ORDER_ID],
        errors=("401", "404", "503"))),
    ("/api/orders/{order_id}", "delete", _op(
        "Cancel an order",
        {"202": _json("OrderWithFills", "The cancel is queued; the order as currently known."),
         "200": _json("OrderWithFills", "With wait=true: after the cancel was processed.")},
        query=s.WaitQuery, path_params=[_ORDER_ID],
        errors=("400", "401", "403", "404", "409", "503"),
        description="The cancel goes through the symbol's ordered matching queue.")),
    # Order management (README "Order management"): every command below is journaled in
    # the symbol's ordered queue like a place or a cancel.
    ("/api/orders/{order_id}", "patch", _op(
        "Reduce an order in place (keeps its queue priority)",
        {"202": _json("OrderWithFills", "The reduce is queued; the order as currently known."),
         "200": _json("OrderWithFills", "With wait=true: after the reduce was processed.")},
        query=s.WaitQuery, path_params=[_ORDER_ID], body=s.ReduceSchema, errors=_WRITE_ERRORS,
        description="`quantity` is the new total quantity: below the current one, a lot "
                    "multiple, > 0. At or below the filled quantity the rest is cancelled "
                    "(CANCELLED, USER_CANCELLED). 409 ORDER_NOT_AMENDABLE for a final or "
                    "MARKET order.")),
    ("/api/orders/{order_id}/replace", "post", _op(
        "Cancel-replace: cancel the order and place a new one, in one command",
        {"202": _json("Order", "Queued: the new order (PENDING) with replacesOrderId."),
         "200": _json("OrderWithFills", "With wait=true: the new order after processing."),
         "409": _json("Error", "The original is already final (ORDER_NOT_REPLACEABLE), or "
                               "the clientOrderId names another order.")},
        query=s.WaitQuery, path_params=[_ORDER_ID], body=s.PlaceOrderSchema,
        errors=("400", "401", "403", "404", "413", "415", "429", "503"),
        description="The body is a new order on the same symbol (the original's when "
                    "omitted) and side. It gets a new id and sequence (loses priority, may "
                    "trade at once). If the original is final when the command is processed, "
                    "the new order is REJECTED ORIGINAL_NOT_OPEN and nothing else changes.")),
    ("/api/orders", "delete", _op(
        "Cancel all the caller's open, untriggered and PENDING orders",
        {"202": _json("CancelAllRequests", "One queued command per symbol."),
         "200": _json("OrderList", "With wait=true: the orders it cancelled "
                                   "(nextCursor absent).")},
        query=s.CancelAllQuery, errors=("400", "401", "403", "503"),
        description="On `symbol`, or on every market when it is absent.")),
    ("/api/orders/test", "post", _op(
        "Validate an order without placing it",
        {"200": _json("Valid", "The order is valid; nothing stored or queued.")},
        body=s.PlaceOrderSchema, errors=("400", "401", "403", "413", "415", "503"))),
    ("/api/orders/by-client-id/{client_order_id}", "delete", _op(
        "Cancel an order by its clientOrderId",
        {"202": _json("OrderWithFills", "The cancel is queued; the order as currently known."),
         "200": _json("OrderWithFills", "With wait=true: after the cancel was processed.")},
        query=s.WaitQuery, path_params=[_CLIENT_ORDER_ID, _SYMBOL_ARG],
        errors=("400", "401", "403", "404", "409", "503"))),
    ("/api/orderbook", "get", _op(
        "Aggregated order book", {"200": _json("OrderBook", "Bids highest first, asks lowest "
                                                            "first.")},
        query=s.BookQuery, errors=("400", "503"))),
    ("/api/orderbook/depth", "get", _op(
        "Market depth with cumulative totals", {"200": _json("Depth", "Depth levels.")},
        query=s.BookQuery, errors=("400", "503"))),
    ("/api/trades", "get", _op(
        "Trade history, newest first", {"200": _json("TradeList", "A page of trades.")},
        query=s.TradesQuery, errors=("400", "503"))),
    ("/api/trades/latest", "get", _op(
        "The latest trades", {"200": _json("LatestTrades", "Newest first.")},
        query=s.LatestTradesQuery, errors=("400", "503"))),
    ("/api/markets", "get", _op(
        "Markets with last price, best bid/ask and 24 h volume",
        {"200": _json("Markets", "Every configured market.")}, errors=("400", "503"))),
    ("/api/ticker", "get", _op(
        "24 h ticker of one market, or of every market without symbol",
        {"200": _json("Ticker", "With symbol: that market's ticker; without: "
                                "{\"tickers\": [Ticker, ...]} (see Tickers).")},
        query=md.TickerQuery, errors=("400", "503"),
        description="Rolling over the last 24 h of one-minute buckets (the same window as "
                    "volume24h in /api/markets); open24h, high24h, low24h, priceChange and "
                    "priceChangePercent are null when there was no trade in the window.")),
    ("/api/candles", "get", _op(
        "Candles (OHLCV) of one market",
        {"200": _json("Candles", "Oldest first; buckets without trades are left out.")},
        query=md.CandlesQuery, errors=("400", "503"),
        description="interval: 1m, 5m, 15m, 1h, 4h or 1d; buckets start at multiples of the "
                    "interval since the epoch, in UTC (4h at 00, 04, .. 20 UTC; 1d at "
                    "midnight UTC). Without start: the limit newest candles up to end, the "
                    "last one the current (open) candle. With start: the first limit "
                    "candles from start. Built from the trades in the matcher's commit, so "
                    "they agree with /api/trades exactly.")),
    ("/api/time", "get", _op(
        "Server time", {"200": _json("ServerTime", "The server's clock, ms since epoch.")},
        errors=("400",))),
    ("/api/health", "get", _op(
        "Liveness and readiness",
        {"200": _json("Health", "Ready: Redis reachable, matchers alive, lag bounded."),
         "503": _json("Health", "Not ready (the body says why).")}, errors=())),
    ("/api/openapi.json", "get", _op(
        "This document", {"200": {"description": "OpenAPI 3 document (JSON)."}}, errors=())),
    ("/api/docs", "get", _op(
        "Human-readable API documentation",
        {"200": {"description": "HTML page.", "content": {"text/html": {}}}}, errors=())),
    ("/metrics", "get", _op(
        "Prometheus metrics",
        {"200": {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
        errors=())),
    ("/api/asyncapi.json", "get", _op(
        "The AsyncAPI 3 document of the /ws WebSocket",
        {"200": {"description": "AsyncAPI 3 document (JSON)."}}, errors=())),
    ("/ws", "get", _op(
        "WebSocket: orderbook, trade, order_status, ticker and candles channels",
        {"101": {"description": "Switching protocols; JSON text frames follow, as "
                              "/api/asyncapi.json and the WebSocket column of /api/docs "
                              "describe."}}, errors=())),
]

# Nested schemas first: apispec names a nested schema on first sight.
COMPONENTS = {
    "PlaceOrder": s.PlaceOrderSchema, "Trade": s.TradeSchema, "Order": s.OrderSchema,
    "BookLevel": s.BookLevelSchema, "DepthLevel": s.DepthLevelSchema,
    "MarketSummary": s.MarketSummarySchema, "SymbolHealth": s.SymbolHealthSchema,
    "ErrorBody": s.ErrorBodySchema, "Error": s.ErrorSchema,
    "BatchRequest": s.BatchRequestSchema, "OrderWithFills": s.OrderWithFillsSchema,
    "OrderList": s.OrderListSchema, "TradeList": s.TradeListSchema,
    "LatestTrades": s.LatestTradesSchema, "BatchResults": s.BatchResultsSchema,
    "OrderBook": s.OrderBookSchema, "Depth": s.DepthSchema, "Markets": s.MarketsSchema,
    "Health": s.HealthSchema, "CancelAllRequests": s.CancelAllRequestsSchema,
    "Valid": s.ValidSchema, "Reduce": s.ReduceSchema,
    "ServerTime": md.ServerTimeSchema, "Candle": md.CandleSchema, "Candles": md.CandlesSchema,
    "Ticker": md.TickerSchema, "Tickers": md.TickersSchema,
}


def _exact_decimal(self, field, **kwargs) -> dict:
    if isinstance(field, s.ExactDecimal):
        return {"type": ["number", "string"], "pattern": r"^[0-9]{1,20}(\.[0-9]{1,20})?$",
                "description": "A JSON number or a decimal string; > 0, an exact multiple of "
                               "the market's tickSize (price) or lotSize (quantity)."}
    return {}


def build_spec(app) -> dict:
    """The OpenAPI document of ``app``'s routes (operations it does not serve are left out)."""
    settings = app.config["SETTINGS"]
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Order matching service", version="1.0.0", openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": "REST API of the matching service. Markets: " + ", ".join(
            f"{m.symbol} (tickSize {m.tick_size}, lotSize {m.lot_size})"
            for m in settings.markets) + ". Every error is {\"error\": {\"code\", "
            "\"message\", \"fields\"?}}. " + _rate_limit_text(settings)},
    )
    plugin.converter.add_attribute_function(_exact_decimal)
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header",
                                                "name": "X-API-Key"})
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    served = {(rule.rule.replace("<", "{").replace(">", "}"), method.lower())
              for rule in app.url_map.iter_rules() for method in rule.methods}
    paths: dict[str, dict] = {}
    for path, method, op in OPERATIONS:
        if (path, method) in served:
            paths.setdefault(path, {})[method] = op
    for path, ops in paths.items():
        spec.path(path=path, operations=ops)
    return spec.to_dict()


def _spec() -> dict:
    app = current_app._get_current_object()
    return app_cached(app, "openapi", lambda: build_spec(app))


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(_spec())


# ---------------------------------------------------------------- the human page

_CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:110em;color:#222;
padding:0 1em}h2{border-bottom:1px solid #ccc;margin-top:1.5em}
code,pre{background:#f4f4f4;padding:0 .2em}pre{padding:.4em;overflow-x:auto;font-size:13px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:2em}@media(max-width:70em){.cols{
grid-template-columns:1fr}}.op{border:1px solid #ddd;border-radius:4px;margin:1em 0;
padding:.5em 1em}.m{display:inline-block;min-width:4.5em;font-weight:bold;color:#fff;
padding:0 .4em;border-radius:3px;text-align:center}.get{background:#2a7}.post{background:#27c}
.delete{background:#c33}.patch{background:#a7c}.send{background:#c80}.receive{background:#27c}
table{border-collapse:collapse;margin:.4em 0}
td,th{border:1px solid #ddd;padding:.15em .5em;text-align:left;vertical-align:top}"""

# Example requests and answers shown on the page (the contract's own examples).
EXAMPLES = {
    ("/api/orders", "post"): (
        {"symbol": "BTC-USD", "side": "BUY", "price": "101.25", "quantity": "0.5",
         "clientOrderId": "abc-1"},
        {"id": "ord_3kTqGx0b4mD1vV2s", "clientOrderId": "abc-1", "symbol": "BTC-USD",
         "side": "BUY", "orderType": "LIMIT", "timeInForce": "GTC", "price": 101.25,
         "quantity": 0.5, "filledQuantity": 0.0, "status": "PENDING", "sequence": 1234,
         "...": "..."}),
    ("/api/candles", "get"): ("?symbol=BTC-USD&interval=1m&limit=2", {
        "symbol": "BTC-USD", "interval": "1m", "candles": [
            {"time": 1732399920000, "open": 100.5, "high": 101.0, "low": 100.4,
             "close": 101.0, "volume": 2.0, "quoteVolume": 201.5, "trades": 3},
            {"time": 1732399980000, "open": 101.0, "high": 101.5, "low": 100.9,
             "close": 101.25, "volume": 3.5, "quoteVolume": 354.1, "trades": 7}]}),
    ("/api/ticker", "get"): ("?symbol=BTC-USD", {
        "symbol": "BTC-USD", "lastPrice": 101.25, "bestBid": 101.2, "bestAsk": 101.5,
        "open24h": 99.0, "high24h": 102.0, "low24h": 98.5, "volume24h": 12.5,
        "quoteVolume24h": 1251.3, "priceChange": 2.25, "priceChangePercent": 2.27,
        "trades24h": 40}),
    ("/api/time", "get"): ("", {"serverTime": 1732400000000}),
    ("/api/orderbook", "get"): ("?symbol=BTC-USD&levels=1", {
        "symbol": "BTC-USD", "sequence": 41, "timestamp": 1732400000000,
        "bids": [{"price": 101.2, "quantity": 3.0, "orders": 2}],
        "asks": [{"price": 101.5, "quantity": 1.0, "orders": 1}], "bestBid": 101.2,
        "bestAsk": 101.5, "spread": 0.3, "midPrice": 101.35}),
}


def _rate_limit_text(settings) -> str:
    from app.ratelimit import parse_config

    config = parse_config(settings.rate_limits)
    if not config.enabled:
        return "Rate limits are off on this node (RATE_LIMITS=off)."

    def each(items):
        return " and ".join(f"{i.amount} per {i.get_expiry()} s" for i in items)

    return (f"Rate limits per API key (the client IP without one), shared by every node: "
            f"reads {each(config.read)}, writes {each(config.write)} (a batch counts its "
            "orders); every /api response carries `RateLimit-Limit`, `RateLimit-Remaining` "
            "and `RateLimit-Reset` (seconds); past a limit: 429 `RATE_LIMITED` with "
            "`Retry-After`, and the request changes nothing.")


def _text(value) -> str:
    """Escaped text with `code` spans (the descriptions use Markdown backticks)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(value)))


def _type(schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f'<a href="#schema-{name}">{html.escape(name)}</a>'
    if schema.get("type") == "array":
        return "array of " + _type(schema.get("items", {}))
    kind = schema.get("type", "any")
    text = "/".join(kind) if isinstance(kind, list) else str(kind)
    if "enum" in schema:
        text += " (" + " | ".join(str(v) for v in schema["enum"] if v is not None) + ")"
    return html.escape(text)


def _bounds(schema: dict) -> str:
    parts = []
    if "minimum" in schema:
        parts.append(f">= {schema['minimum']}")
    if "maximum" in schema:
        parts.append(f"<= {schema['maximum']}")
    if "maxLength" in schema:
        parts.append(f"at most {schema['maxLength']} chars")
    return html.escape(", ".join(parts))


def _media(content: dict) -> str:
    for media, body in content.items():
        if "schema" in body:
            return _type(body["schema"])
        return html.escape(media)
    return ""


def _pre(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=1)
    return f"<pre>{html.escape(text)}</pre>"


def _fields_table(schema: dict, anchor: str = "") -> str:
    required = set(schema.get("required", []))
    out = [f"<table{anchor}><tr><th>field</th><th>type</th><th>required</th>"
           "<th>description</th></tr>"]
    for field, prop in schema.get("properties", {}).items():
        out.append(f"<tr><td><code>{html.escape(field)}</code></td><td>{_type(prop)}"
                   f"{' or null' if prop.get('nullable') else ''}</td>"
                   f"<td>{'yes' if field in required else ''}</td>"
                   f"<td>{_text(prop.get('description', ''))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _rest_column(doc: dict) -> list[str]:
    e = html.escape
    out = ["<section><h2>REST</h2>",
           "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a> "
           f"(OpenAPI {e(doc['openapi'])}).</p>"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out.append(f"<div class='op'><span class='m {e(method)}'>{e(method.upper())}"
                       f"</span> <code>{e(path)}</code> {_text(op.get('summary', ''))}")
            if op.get("description"):
                out.append(f"<p>{_text(op['description'])}</p>")
            if op.get("parameters"):
                out.append("<table><tr><th>parameter</th><th>in</th><th>type</th>"
                           "<th>required</th><th>default</th><th>limits</th>"
                           "<th>description</th></tr>")
                for p in op["parameters"]:
                    schema = p.get("schema", {})
                    default = schema.get("default")
                    out.append(f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                               f"<td>{_type(schema)}</td>"
                               f"<td>{'yes' if p.get('required') else ''}</td>"
                               f"<td>{'' if default is None else e(json.dumps(default))}</td>"
                               f"<td>{_bounds(schema)}</td>"
                               f"<td>{_text(p.get('description', ''))}</td></tr>")
                out.append("</table>")
            if op.get("requestBody"):
                out.append(f"<p>Body: {_media(op['requestBody']['content'])}</p>")
            example = EXAMPLES.get((path, method))
            if example is not None:
                request, answer = example
                out.append("<p>Example:</p>" + _pre(
                    f"{method.upper()} {path}{request if isinstance(request, str) else ''}"))
                if not isinstance(request, str):
                    out.append(_pre(request))
                out.append(_pre(answer))
            out.append("<table><tr><th>status</th><th>response</th><th>body</th></tr>")
            for code, resp in op["responses"].items():
                out.append(f"<tr><td>{e(code)}</td><td>{_text(resp.get('description', ''))}"
                           f"</td><td>{_media(resp.get('content', {}))}</td></tr>")
            out.append("</table></div>")
    out.append("</section>")
    return out


def _ws_column(adoc: dict) -> list[str]:
    e = html.escape
    messages = adoc["components"]["messages"]
    out = ["<section><h2>WebSocket /ws</h2>", f"<p>{_text(adoc['info']['description'])}</p>",
           "<p>Machine-readable: <a href='/api/asyncapi.json'>/api/asyncapi.json</a> "
           f"(AsyncAPI {e(adoc['asyncapi'])}).</p>"]

    def message(name: str) -> str:
        m = messages[name]
        ref = m["payload"]["$ref"].rsplit("/", 1)[1]
        example = m["examples"][0]["payload"]
        return (f"<p><b>{e(m['name'])}</b>: {_text(m['summary'])} (payload "
                f"<a href='#ws-schema-{e(ref)}'>{e(ref)}</a>)</p>" + _pre(example))

    for name, channel in adoc["channels"].items():
        out.append(f"<div class='op'><h3>{e(channel['title'])}</h3>"
                   f"<p>{_text(channel['description'])}</p>")
        for op in adoc["operations"].values():
            if op["channel"]["$ref"] != f"#/channels/{name}":
                continue
            direction = "client to server" if op["action"] == "receive" else "server to client"
            out.append(f"<p><span class='m {e(op['action'])}'>{e(direction)}</span> "
                       f"{_text(op.get('summary', ''))}</p>")
            for ref in op["messages"]:
                out.append(message(ref["$ref"].rsplit("/", 1)[1]))
            if "reply" in op:
                replies = ", ".join(r["$ref"].rsplit("/", 1)[1] for r in op["reply"]["messages"])
                out.append(f"<p>Answer: {e(replies)}.</p>")
        out.append("</div>")
    out.append("<h2>WebSocket payloads</h2>")
    for name, schema in adoc["components"]["schemas"].items():
        out.append(f"<h3 id='ws-schema-{e(name)}'>{e(name)}</h3>" + _fields_table(schema)
                   .replace("href=\"#schema-", "href=\"#ws-schema-"))
    out.append("</section>")
    return out


def render_page(doc: dict, adoc: dict) -> str:
    """REST (the OpenAPI ``doc``) and WebSocket (the AsyncAPI ``adoc``) side by side."""
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['info']['title'])}"
           f"</title><style>{_CSS}</style></head><body><h1>{e(doc['info']['title'])} "
           f"<small>{e(doc['info']['version'])}</small></h1>",
           f"<p>{_text(doc['info'].get('description', ''))}</p><div class='cols'>"]
    out += _rest_column(doc)
    out += _ws_column(adoc)
    out.append("</div><h2>REST schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        out.append(f"<h3 id='schema-{e(name)}'>{e(name)}</h3>" + _fields_table(schema))
    out.append("</body></html>")
    return "\n".join(out)


@bp.get("/api/docs")
def docs_page():
    from app.api.asyncapi import asyncapi_doc

    return Response(render_page(_spec(), asyncapi_doc()), mimetype="text/html")
