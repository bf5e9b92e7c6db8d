// The trading page: wires the market views to REST (/api/*) and the live feed (/ws).

import { apiKey, get, onUnauthorized, query, setApiKey } from "./api.js";
import { addTrade, candlesFromTrades, INTERVALS, tickerFromTrades } from "./aggregate.js";
import { LocalBook } from "./book.js";
import { CandleChart, drawDepth, loadChartLibrary } from "./charts.js";
import { Feed } from "./feed.js";
import { clock, decimalsOf, el, fixed } from "./format.js";
import { Orders } from "./orders.js";

const BOOK_ROWS = 15; // per side on screen
const DEPTH_LEVELS = 60; // per side in the depth chart
const TAPE_ROWS = 60;
const HISTORY_TRADES = 1000; // trades behind the computed ticker and candles
const FLASH_MS = 3000;
// Fresh snapshots that still disagree with the server's checksum: the two compute it
// differently, and resubscribing again would loop, so the page stops verifying them.
const MAX_CHECKSUM_MISSES = 3;

const $ = (id) => document.getElementById(id);
const features = JSON.parse($("features").textContent);

const state = {
  market: null,
  markets: new Map(),
  book: null,
  tape: new Map(), // trade sequence -> trade, for the symbol shown
  history: [], // trades of the last 24 h-ish, for the computed ticker and candles
  interval: "1m",
  candles: [], // only when candles are computed here
  resyncs: 0,
  checksums: true, // verify book checksums
  checksumMisses: 0, // in a row, with no matching checksum between
  flashUntil: 0,
};

const feed = new Feed(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
  { onState: showFeedState, onReopen: catchUp });
let chart = null;
let orders = null;

// ------------------------------------------------------------------ feed status

function showFeedState(feedState, detail) {
  const box = $("feed-status");
  box.dataset.reconnects = feed.reconnects;
  if (Date.now() < state.flashUntil && feedState === "live") return;
  box.dataset.state = feedState;
  box.textContent = feedState === "reconnecting"
    ? `reconnecting in ${(detail / 1000).toFixed(1)} s` : feedState === "live"
      ? `live · ${state.market ? state.market.symbol : ""}` : "connecting…";
}

function flash(text) {
  const box = $("feed-status");
  state.flashUntil = Date.now() + FLASH_MS;
  box.dataset.state = "resync";
  box.textContent = text;
  setTimeout(() => showFeedState(feed.state), FLASH_MS + 10);
}

// ------------------------------------------------------------------ order book

function resync(reason) {
  state.resyncs += 1;
  $("feed-status").dataset.resyncs = state.resyncs;
  const misses = reason.startsWith("checksum") && !state.book.verified;
  state.checksumMisses = misses ? state.checksumMisses + 1 : 0;
  if (state.checksumMisses >= MAX_CHECKSUM_MISSES) {
    state.checksums = false;
    flash("server checksums disagree with the book: no longer verified");
  } else {
    flash(`resynced book (${reason})`);
  }
  // The new book ignores updates until its snapshot arrives.
  state.book = new LocalBook(state.market.symbol, { checksums: state.checksums });
  feed.subscribe({ channel: "orderbook", symbol: state.market.symbol });
}

feed.on("orderbook", (frame) => {
  if (!state.book || frame.symbol !== state.book.symbol) return;
  const problem = frame.type === "snapshot" ? state.book.applySnapshot(frame)
    : state.book.applyUpdate(frame);
  if (problem) resync(problem);
  else scheduleRender();
});

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => {
    renderPending = false;
    renderBook();
  });
}

function bookRows(levels, side, m, maxTotal) {
  let total = 0;
  return levels.map((level) => {
    total += level.quantity;
    const row = el("tr", { className: side },
      el("td", {}, fixed(level.price, m.priceDecimals)),
      el("td", {}, fixed(level.quantity, m.lotDecimals)),
      el("td", {}, fixed(total, m.lotDecimals)));
    const pct = ((total / maxTotal) * 100).toFixed(1);
    const color = side === "bid" ? "38,162,105" : "224,72,78";
    row.style.backgroundImage = `linear-gradient(to left, rgba(${color},.16) ${pct}%, `
      + `transparent ${pct}%)`;
    return row;
  });
}

function renderBook() {
  const book = state.book;
  const m = state.market;
  if (!book || book.sequence === null) return;
  const bids = book.bids(Math.max(BOOK_ROWS, DEPTH_LEVELS));
  const asks = book.asks(Math.max(BOOK_ROWS, DEPTH_LEVELS));
  const shownBids = bids.slice(0, BOOK_ROWS);
  const shownAsks = asks.slice(0, BOOK_ROWS);
  const sum = (levels) => levels.reduce((s, l) => s + l.quantity, 0);
  const maxTotal = Math.max(sum(shownBids), sum(shownAsks)) || 1;
  $("book-asks").replaceChildren(...bookRows(shownAsks, "ask", m, maxTotal).reverse());
  $("book-bids").replaceChildren(...bookRows(shownBids, "bid", m, maxTotal));
  $("book").dataset.sequence = book.sequence;
  const bestBid = bids[0]?.price;
  const bestAsk = asks[0]?.price;
  const spread = bestBid !== undefined && bestAsk !== undefined ? bestAsk - bestBid : null;
  $("book-spread").replaceChildren(
    el("span", { id: "best-bid", className: "side-BUY" }, fixed(bestBid, m.priceDecimals)),
    " · spread ", el("span", { id: "spread" }, fixed(spread, m.priceDecimals)),
    spread === null ? " · " : ` (${((spread / bestAsk) * 100).toFixed(2)}%) · `,
    el("span", { id: "best-ask", className: "side-SELL" }, fixed(bestAsk, m.priceDecimals)));
  drawDepth($("depth"), bids.slice(0, DEPTH_LEVELS), asks.slice(0, DEPTH_LEVELS),
    m.priceDecimals);
}

// ------------------------------------------------------------------ trades, ticker, candles

feed.on("trade", (trade) => {
  if (!state.market || trade.symbol !== state.market.symbol) return;
  if (state.tape.has(trade.sequence)) return;
  addToTape([trade]);
  state.history.push(trade);
  if (!features.ticker) renderTicker(tickerFromTrades(trade.symbol, state.history, Date.now()));
  if (!features.candles && chart) {
    const changed = addTrade(state.candles, trade, INTERVALS[state.interval]);
    if (changed) chart.update(changed);
  }
});

feed.on("ticker", (ticker) => {
  if (state.market && ticker.symbol === state.market.symbol) renderTicker(ticker);
});

feed.on("candles", (frame) => {
  if (chart && state.market && frame.symbol === state.market.symbol
      && frame.interval === state.interval) chart.update(frame.candle);
});

feed.on("order_status", (order) => orders && orders.upsert(order));
feed.on("authenticated", (frame) => orders && (orders.accountId = frame.accountId));

feed.on("error", (frame) => {
  if (frame.reqId === undefined) flash(`feed: ${frame.code} ${frame.message}`);
});

/** After a reconnect: the trades the socket missed (the book comes back as a snapshot). */
async function catchUp() {
  const m = state.market;
  if (!m) return;
  const { trades } = await get(`/api/trades/latest?${query({ symbol: m.symbol,
    limit: TAPE_ROWS })}`);
  if (state.market !== m) return;
  const missed = trades.filter((t) => !state.tape.has(t.sequence)).reverse();
  addToTape(missed);
  state.history.push(...missed);
  if (!features.ticker) renderTicker(tickerFromTrades(m.symbol, state.history, Date.now()));
  if (orders) orders.load();
}

function addToTape(trades) {
  for (const trade of trades) state.tape.set(trade.sequence, trade);
  const newest = [...state.tape.values()].sort((a, b) => b.sequence - a.sequence)
    .slice(0, TAPE_ROWS);
  state.tape = new Map(newest.map((t) => [t.sequence, t]));
  const m = state.market;
  $("tape").replaceChildren(...newest.map((t) => {
    const row = el("tr", { className: t.takerSide },
      el("td", {}, fixed(t.price, m.priceDecimals)),
      el("td", {}, fixed(t.quantity, m.lotDecimals)), el("td", {}, clock(t.timestamp)));
    row.dataset.sequence = t.sequence;
    return row;
  }));
}

function renderTicker(ticker) {
  const m = state.market;
  $("t-last").textContent = fixed(ticker.lastPrice, m.priceDecimals);
  const change = $("t-change");
  const sign = (x) => (x >= 0 ? "+" : "");
  const percent = ticker.priceChangePercent ?? null;
  change.textContent = ticker.priceChange === null || ticker.priceChange === undefined ? "–"
    : `${sign(ticker.priceChange)}${fixed(ticker.priceChange, m.priceDecimals)}`
      + (percent === null ? "" : ` (${sign(percent)}${Number(percent).toFixed(2)} %)`);
  change.className = ticker.priceChange > 0 ? "side-BUY" : ticker.priceChange < 0
    ? "side-SELL" : "";
  $("t-high").textContent = fixed(ticker.high24h, m.priceDecimals);
  $("t-low").textContent = fixed(ticker.low24h, m.priceDecimals);
  $("t-volume").textContent = fixed(ticker.volume24h, m.lotDecimals);
}

async function loadCandles() {
  if (!chart) return;
  const m = state.market;
  if (features.candles) {
    const answer = await get(`/api/candles?${query({ symbol: m.symbol,
      interval: state.interval, limit: 500 })}`);
    chart.setCandles(answer.candles);
  } else {
    state.candles = candlesFromTrades(state.history, INTERVALS[state.interval]);
    chart.setCandles(state.candles);
  }
}

function setupIntervals() {
  const box = $("intervals");
  for (const name of Object.keys(INTERVALS)) {
    const button = el("button", { type: "button" }, name);
    button.dataset.interval = name;
    button.setAttribute("aria-pressed", String(name === state.interval));
    button.addEventListener("click", () => chooseInterval(name));
    box.append(button);
  }
}

function candleSubscription() {
  return { channel: "candles", symbol: state.market.symbol, interval: state.interval };
}

function chooseInterval(name) {
  if (features.candles) feed.unsubscribe(candleSubscription());
  state.interval = name;
  for (const b of $("intervals").children) {
    b.setAttribute("aria-pressed", String(b.dataset.interval === name));
  }
  if (features.candles) feed.subscribe(candleSubscription());
  loadCandles();
}

// ------------------------------------------------------------------ markets

function subscriptions(symbol) {
  const subs = [{ channel: "orderbook", symbol }, { channel: "trade", symbol }];
  if (features.ticker) subs.push({ channel: "ticker", symbol });
  if (features.candles) subs.push({ channel: "candles", symbol, interval: state.interval });
  if (orders && (!features.authRequired || apiKey())) {
    subs.push({ channel: "order_status", symbol });
  }
  return subs;
}

async function chooseMarket(symbol) {
  const previous = state.market;
  if (previous) subscriptions(previous.symbol).forEach((s) => feed.unsubscribe(s));
  const m = state.markets.get(symbol);
  state.market = m;
  state.book = new LocalBook(symbol, { checksums: state.checksums });
  state.tape = new Map();
  state.history = [];
  $("book-asks").replaceChildren();
  $("book-bids").replaceChildren();
  $("tape").replaceChildren();
  history.replaceState(null, "", `?${query({ symbol })}`);
  document.title = `${symbol} · trading`;
  if (chart) chart.setPrecision(m.tickSize, m.priceDecimals);
  subscriptions(symbol).forEach((s) => feed.subscribe(s));
  showFeedState(feed.state);

  const [latest, recent] = await Promise.all([
    get(`/api/trades/latest?${query({ symbol, limit: TAPE_ROWS })}`),
    features.ticker && features.candles ? null
      : get(`/api/trades?${query({ symbol, limit: HISTORY_TRADES })}`),
  ]);
  if (state.market !== m) return; // switched again meanwhile
  addToTape(latest.trades);
  if (recent) {
    const live = state.history; // trades that arrived over the feed while loading
    const known = new Set(recent.trades.map((t) => t.sequence));
    state.history = [...recent.trades.reverse(), ...live.filter((t) => !known.has(t.sequence))];
  }
  if (features.ticker) {
    renderTicker(await get(`/api/ticker?${query({ symbol })}`));
  } else {
    renderTicker(tickerFromTrades(symbol, state.history, Date.now()));
  }
  if (!chart) $("candles-note").textContent = "chart library not installed";
  else if (!features.candles) $("candles-note").textContent = `from the last ${
    HISTORY_TRADES} trades`;
  await loadCandles();
  if (orders) await orders.setMarket(m);
}

async function loadMarkets() {
  const { markets } = await get("/api/markets");
  const select = $("market-select");
  for (const market of markets) {
    state.markets.set(market.symbol, { ...market, priceDecimals: decimalsOf(market.tickSize),
      lotDecimals: decimalsOf(market.lotSize) });
    select.append(el("option", { value: market.symbol }, market.symbol));
  }
  const wanted = new URLSearchParams(location.search).get("symbol");
  const symbol = state.markets.has(wanted) ? wanted : markets[0].symbol;
  select.value = symbol;
  select.addEventListener("change", () => chooseMarket(select.value));
  return symbol;
}

// ------------------------------------------------------------------ API key, start

function setupApiKey() {
  const box = $("apikey-box");
  const input = $("apikey");
  input.value = apiKey();
  box.addEventListener("submit", (event) => { event.preventDefault(); input.blur(); });
  box.hidden = !features.authRequired;
  onUnauthorized.push(() => { box.hidden = false; });
  input.addEventListener("change", () => {
    const symbol = state.market.symbol;
    const before = subscriptions(symbol);
    setApiKey(input.value.trim());
    feed.apiKey = apiKey() || null;
    orders.accountId = feed.apiKey ? null : "anonymous"; // the socket's auth ack tells
    feed.restart(); // a fresh socket: auth first, then the subscriptions
    before.forEach((s) => feed.unsubscribe(s));
    subscriptions(symbol).forEach((s) => feed.subscribe(s));
    orders.setMarket(state.market);
  });
}

async function start() {
  if (features.readOnly) {
    $("entry-panel").hidden = true;
    $("mine-panel").hidden = true;
    $("readonly-note").hidden = false;
  } else {
    orders = new Orders(features, { form: $("order-form"), result: $("order-result"),
      openBody: $("my-orders"), fillsBody: $("my-fills"), cancelAll: $("cancel-all") });
    orders.accountId = apiKey() ? null : "anonymous";
    setupApiKey();
  }
  feed.apiKey = apiKey() || null;
  setupIntervals();
  const lib = await loadChartLibrary();
  if (lib) chart = new CandleChart(lib, $("candles"));
  const symbol = await loadMarkets();
  feed.connect();
  await chooseMarket(symbol);
  document.body.dataset.readyMs = Math.round(performance.now());
  document.body.dataset.ready = "true";
}

window.addEventListener("resize", scheduleRender); // the depth canvas follows its panel
// For a look from the browser's console (and the browser tests).
window.dashboard = { state, feed, features, get chart() { return chart; } };
start();
