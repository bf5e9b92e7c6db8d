// Candles and a 24 h ticker computed from trades, for nodes that do not serve
// /api/candles or /api/ticker (pure; no DOM). Same shapes as those endpoints.

export const INTERVALS = { "1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3,
  "4h": 14400e3, "1d": 86400e3 };
const DAY_MS = 86400e3;

/** Fold one trade into candles (oldest first); returns the candle it changed. */
export function addTrade(candles, trade, intervalMs) {
  const time = Math.floor(trade.timestamp / intervalMs) * intervalMs;
  let last = candles[candles.length - 1];
  if (last && time < last.time) return null; // older than the open candle: ignored
  if (!last || time > last.time) {
    last = { time, open: trade.price, high: trade.price, low: trade.price, close: trade.price,
      volume: 0, quoteVolume: 0, trades: 0 };
    candles.push(last);
  }
  last.high = Math.max(last.high, trade.price);
  last.low = Math.min(last.low, trade.price);
  last.close = trade.price;
  last.volume += trade.quantity;
  last.quoteVolume += trade.price * trade.quantity;
  last.trades += 1;
  return last;
}

/** Candles from trades in any order. */
export function candlesFromTrades(trades, intervalMs) {
  const candles = [];
  for (const trade of [...trades].sort((a, b) => a.sequence - b.sequence)) {
    addTrade(candles, trade, intervalMs);
  }
  return candles;
}

/** A ticker over the last 24 h of ``trades`` (any order), like GET /api/ticker. */
export function tickerFromTrades(symbol, trades, now) {
  const recent = trades.filter((t) => t.timestamp > now - DAY_MS)
    .sort((a, b) => a.sequence - b.sequence);
  const newest = trades.reduce((a, t) => (!a || t.sequence > a.sequence ? t : a), null);
  const ticker = { symbol, lastPrice: newest ? newest.price : null, open24h: null,
    high24h: null, low24h: null, volume24h: 0, priceChange: null, priceChangePercent: null,
    trades24h: recent.length };
  if (recent.length) {
    ticker.open24h = recent[0].price;
    ticker.high24h = Math.max(...recent.map((t) => t.price));
    ticker.low24h = Math.min(...recent.map((t) => t.price));
    ticker.volume24h = recent.reduce((sum, t) => sum + t.quantity, 0);
    ticker.priceChange = ticker.lastPrice - ticker.open24h;
    ticker.priceChangePercent = (ticker.priceChange / ticker.open24h) * 100;
  }
  return ticker;
}
