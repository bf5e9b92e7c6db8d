"""Public market data: order book, depth, trades, markets, time, candles, ticker."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.common import all_markets, get_redis, market_for, query, settings
from archive import reads as history
from schemas.market_data import CandlesQuery, TickerQuery
from schemas.orders import BookQuery, LatestTradesQuery, SymbolQuery, TradesQuery
from store import candles, read

bp = Blueprint("market_data", __name__)
_BOOK, _TRADES, _LATEST = BookQuery(), TradesQuery(), LatestTradesQuery()
_NO_ARGS = SymbolQuery(only=())


@bp.get("/api/orderbook")
def orderbook():
    q = query(_BOOK)
    return jsonify(read.orderbook(get_redis(), market_for(q["symbol"]), q["levels"]))


@bp.get("/api/orderbook/depth")
def depth():
    q = query(_BOOK)
    return jsonify(read.depth(get_redis(), market_for(q["symbol"]), q["levels"]))


@bp.get("/api/trades")
def trades():
    q = query(_TRADES)
    items, next_cursor = history.trades(get_redis(), settings(), market_for(q["symbol"]),
                                        q["limit"], q["cursor"])
    return jsonify({"trades": items, "nextCursor": next_cursor})


@bp.get("/api/trades/latest")
def latest_trades():
    q = query(_LATEST)
    return jsonify({"trades": history.latest_trades(get_redis(), settings(),
                                                    market_for(q["symbol"]), q["limit"])})


@bp.get("/api/markets")
def list_markets():
    query(_NO_ARGS)
    return jsonify({"markets": read.market_summaries(get_redis(),
                                                     list(all_markets().values()))})


@bp.get("/api/time")
def server_time():
    query(_NO_ARGS)
    return jsonify({"serverTime": read.now_ms()})


_CANDLES, _TICKER = CandlesQuery(), TickerQuery()


@bp.get("/api/candles")
def candle_list():
    q = query(_CANDLES)
    market = market_for(q["symbol"])
    return jsonify({"symbol": market.symbol, "interval": q["interval"],
                    "candles": candles.candles(get_redis(), market, q["interval"], q["start"],
                                               q["end"], q["limit"])})


@bp.get("/api/ticker")
def ticker():
    q = query(_TICKER)
    if q["symbol"] is None:
        return jsonify({"tickers": candles.tickers(get_redis(), list(all_markets().values()),
                                                   read.now_ms())})
    market = market_for(q["symbol"])
    return jsonify(candles.tickers(get_redis(), [market], read.now_ms())[0])
