"""Client frames of the ``/ws`` WebSocket (api.md §4, §5), validated with marshmallow.

``parse_frame(data)`` turns one decoded JSON value into a ``Frame`` or raises
``FrameError(code, message)``; ``app.ws`` answers that as
``{"event": "error", "code", "message"}`` and keeps the socket open.
Whether the symbol is a configured market is checked by the caller (it needs settings).
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.market_data import INTERVALS

OPS = ("subscribe", "unsubscribe", "ping", "auth")
ENTRY_OPS = ("place", "cancel")  # order entry: app.ws.entry, validated like REST bodies
CHANNELS = ("orderbook", "trade", "order_status", "ticker", "candles")

# Error codes sent back to the client.
BAD_FRAME = "BAD_FRAME"
UNKNOWN_OP = "UNKNOWN_OP"
UNKNOWN_CHANNEL = "UNKNOWN_CHANNEL"
UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
AUTH_FAILED = "AUTH_FAILED"
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
RATE_LIMITED = "RATE_LIMITED"
TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"
FRAME_TOO_LARGE = "FRAME_TOO_LARGE"
NOT_SUBSCRIBED = "NOT_SUBSCRIBED"
UNAVAILABLE = "UNAVAILABLE"


class FrameError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_SYMBOL = fields.String(validate=validate.Length(min=1, max=32))
_ORDER_ID = fields.String(
    data_key="orderId",
    validate=[validate.Length(min=1, max=64), validate.Regexp(r"^[A-Za-z0-9_-]+$")],
)


class SubscriptionSchema(Schema):
    """subscribe / unsubscribe: a channel plus a symbol, or (order_status) an orderId."""

    class Meta:
        unknown = RAISE

    op = fields.String(required=True)
    channel = fields.String(required=True)
    symbol = _SYMBOL
    order_id = _ORDER_ID
    interval = fields.String(validate=validate.OneOf(list(INTERVALS)))

    @validates_schema
    def _target(self, data, **_kwargs):
        has_symbol, has_order = "symbol" in data, "order_id" in data
        if (data["channel"] == "candles") != ("interval" in data):
            raise ValidationError({"interval": [
                "candles needs an interval (one of " + ", ".join(INTERVALS) + ")."
                if data["channel"] == "candles" else "Only candles takes an interval."]})
        if data["channel"] == "order_status":
            if has_symbol == has_order:
                raise ValidationError("order_status takes exactly one of symbol or orderId.")
        else:
            if has_order:
                raise ValidationError({"orderId": ["Only order_status takes an orderId."]})
            if not has_symbol:
                raise ValidationError({"symbol": ["Missing data for required field."]})


class PingSchema(Schema):
    class Meta:
        unknown = RAISE

    op = fields.String(required=True)


class AuthSchema(Schema):
    class Meta:
        unknown = RAISE

    op = fields.String(required=True)
    api_key = fields.String(required=True, data_key="apiKey", validate=validate.Length(max=256))


_SCHEMAS = {
    "subscribe": SubscriptionSchema(),
    "unsubscribe": SubscriptionSchema(),
    "ping": PingSchema(),
    "auth": AuthSchema(),
}


@dataclass(frozen=True)
class Frame:
    op: str
    channel: str | None = None
    symbol: str | None = None
    order_id: str | None = None
    api_key: str | None = None
    interval: str | None = None


def _flatten(messages) -> str:
    if isinstance(messages, dict):
        return "; ".join(
            f"{key}: {_flatten(value)}" if key != "_schema" else _flatten(value)
            for key, value in messages.items()
        )
    if isinstance(messages, list):
        return " ".join(_flatten(m) for m in messages)
    return str(messages)


def parse_frame(raw) -> Frame:
    """Validate one decoded client frame."""
    if not isinstance(raw, dict):
        raise FrameError(BAD_FRAME, "A frame is a JSON object.")
    op = raw.get("op")
    if op not in _SCHEMAS:
        expected = ", ".join(OPS + ENTRY_OPS)
        raise FrameError(UNKNOWN_OP, f"Unknown op {op!r}; expected one of {expected}.")
    if op in ("subscribe", "unsubscribe"):
        channel = raw.get("channel")
        if channel is None:
            raise FrameError(BAD_FRAME, "channel: Missing data for required field.")
        if channel not in CHANNELS:
            raise FrameError(
                UNKNOWN_CHANNEL,
                f"Unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}.",
            )
    try:
        data = _SCHEMAS[op].load(raw)
    except ValidationError as err:
        raise FrameError(BAD_FRAME, _flatten(err.messages)) from None
    return Frame(**data)
