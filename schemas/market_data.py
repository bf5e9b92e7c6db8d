"""Market data beyond the book and trades: server time, 24 h ticker, candles.

Queries (strict, like every query here) and the response shapes the OpenAPI document
is generated from. The numbers follow the rest of the API: prices and quantities are
JSON numbers at the market's precision.
"""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.orders import StrictSchema, SymbolQuery, _limit

# Candle intervals and their length in ms. Buckets start at multiples of the length
# since the Unix epoch (UTC midnight), so 4h candles start at 00, 04, ... 20 UTC and 1d
# candles at 00:00 UTC.
INTERVALS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000,
             "4h": 14_400_000, "1d": 86_400_000}


class CandlesQuery(SymbolQuery):
    interval = fields.String(required=True, validate=validate.OneOf(list(INTERVALS)),
                             metadata={"description": "One of " + ", ".join(INTERVALS) + "."})
    start = fields.Integer(load_default=None, strict=False, validate=validate.Range(min=0),
                           metadata={"description": "ms since epoch: candles whose bucket "
                                                    "starts at or after it."})
    end = fields.Integer(load_default=None, strict=False, validate=validate.Range(min=0),
                         metadata={"description": "ms since epoch: candles whose bucket "
                                                  "starts at or before it."})
    limit = _limit(500)

    @validates_schema
    def _range(self, data, **_kwargs):
        start, end = data.get("start"), data.get("end")
        if start is not None and end is not None and start > end:
            raise ValidationError("must not be after 'end'.", "start")


class TickerQuery(StrictSchema):
    symbol = fields.String(load_default=None,
                           metadata={"description": "Omit for every market."})


class ServerTimeSchema(Schema):
    serverTime = fields.Integer(metadata={"description": "ms since epoch (UTC).",
                                          "example": 1732400000000})


class CandleSchema(Schema):
    time = fields.Integer(metadata={"description": "Bucket start, ms since epoch (UTC)."})
    open = fields.Float()
    high = fields.Float()
    low = fields.Float()
    close = fields.Float()
    volume = fields.Float(metadata={"description": "Base quantity traded."})
    quoteVolume = fields.Float(metadata={"description": "Sum of price x quantity."})
    trades = fields.Integer()


class CandlesSchema(Schema):
    symbol = fields.String()
    interval = fields.String()
    candles = fields.List(fields.Nested(CandleSchema),
                          metadata={"description": "Oldest first; the last one is the "
                                                   "current (open) candle."})


class TickerSchema(Schema):
    symbol = fields.String()
    lastPrice = fields.Float(allow_none=True)
    bestBid = fields.Float(allow_none=True)
    bestAsk = fields.Float(allow_none=True)
    open24h = fields.Float(allow_none=True)
    high24h = fields.Float(allow_none=True)
    low24h = fields.Float(allow_none=True)
    volume24h = fields.Float()
    quoteVolume24h = fields.Float()
    priceChange = fields.Float(allow_none=True)
    priceChangePercent = fields.Float(allow_none=True)
    trades24h = fields.Integer()


class TickersSchema(Schema):
    tickers = fields.List(fields.Nested(TickerSchema))
