// The candlestick chart (TradingView lightweight-charts, served by this node) and the
// depth chart (a small canvas drawing: cumulative bids left of the mid, asks right).

const COLORS = { bg: "#161a21", text: "#9aa3b2", grid: "#20252e", buy: "#26a269",
  sell: "#e0484e" };

export async function loadChartLibrary() {
  try {
    return await import("/dashboard/vendor/lightweight-charts.mjs");
  } catch {
    return null; // not installed: the page works without the candle chart
  }
}

export class CandleChart {
  constructor(lib, container) {
    this.chart = lib.createChart(container, {
      autoSize: true,
      layout: { background: { color: COLORS.bg }, textColor: COLORS.text,
        attributionLogo: false },
      grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: COLORS.grid,
        barSpacing: 10, rightOffset: 4 },
      rightPriceScale: { borderColor: COLORS.grid },
    });
    this.series = this.chart.addSeries(lib.CandlestickSeries, {
      upColor: COLORS.buy, downColor: COLORS.sell, wickUpColor: COLORS.buy,
      wickDownColor: COLORS.sell, borderVisible: false,
    });
    this.volume = this.chart.addSeries(lib.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, color: "#2a3140",
      lastValueVisible: false, priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.lastTime = null;
  }

  setPrecision(tickSize, decimals) {
    this.series.applyOptions({ priceFormat: { type: "price", precision: decimals,
      minMove: tickSize } });
  }

  setCandles(candles) {
    this.series.setData(candles.map(bar));
    this.volume.setData(candles.map(volumeBar));
    this.lastTime = candles.length ? candles[candles.length - 1].time : null;
    this.chart.timeScale().scrollToRealTime();
  }

  /** The open candle changed, or a new one opened (older candles are never redrawn). */
  update(candle) {
    if (this.lastTime !== null && candle.time < this.lastTime) return;
    this.series.update(bar(candle));
    this.volume.update(volumeBar(candle));
    this.lastTime = candle.time;
  }
}

// Candle times are ms since epoch in the API; the chart counts seconds.
const seconds = (time) => (time > 1e11 ? time / 1000 : time);
const bar = (c) => ({ time: seconds(c.time), open: c.open, high: c.high, low: c.low,
  close: c.close });
const volumeBar = (c) => ({ time: seconds(c.time), value: c.volume,
  color: c.close >= c.open ? "#1e4d3a" : "#5a2a2e" });

/** Cumulative depth around the mid: bids step down to the left, asks to the right. */
export function drawDepth(canvas, bids, asks, priceDecimals) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  if (!bids.length && !asks.length) return;
  const cumulative = (levels) => {
    let total = 0;
    return levels.map((l) => [l.price, (total += l.quantity)]);
  };
  const bidSteps = cumulative(bids);
  const askSteps = cumulative(asks);
  const bestBid = bids[0]?.price ?? asks[0].price;
  const bestAsk = asks[0]?.price ?? bids[0].price;
  const mid = (bestBid + bestAsk) / 2;
  const reach = Math.max(mid - (bids.at(-1)?.price ?? mid), (asks.at(-1)?.price ?? mid) - mid)
    * 1.05 || 1;
  const low = mid - reach;
  const high = mid + reach;
  const maxTotal = Math.max(bidSteps.at(-1)?.[1] || 0, askSteps.at(-1)?.[1] || 0);
  const pad = 16;
  const base = height - pad;
  const x = (price) => ((price - low) / (high - low)) * width;
  const y = (total) => base - (total / maxTotal) * (base - 6);
  drawSide(ctx, bidSteps, x, y, base, 0, COLORS.buy);
  drawSide(ctx, askSteps, x, y, base, width, COLORS.sell);
  ctx.fillStyle = COLORS.text;
  ctx.font = "11px sans-serif";
  ctx.textBaseline = "bottom";
  const labels = [[2, "left", low], [width / 2, "center", mid], [width - 2, "right", high]];
  for (const [at, align, price] of labels) {
    ctx.textAlign = align;
    ctx.fillText(price.toFixed(priceDecimals), at, height - 1);
  }
}

/** One side as a step area from its best price out to the chart's edge (edgeX). */
function drawSide(ctx, steps, x, y, base, edgeX, color) {
  if (!steps.length) return;
  ctx.beginPath();
  ctx.moveTo(x(steps[0][0]), base);
  let previous = base;
  for (const [price, total] of steps) {
    ctx.lineTo(x(price), previous);
    ctx.lineTo(x(price), y(total));
    previous = y(total);
  }
  ctx.lineTo(edgeX, previous);
  ctx.lineTo(edgeX, base);
  ctx.closePath();
  ctx.fillStyle = `${color}40`;
  ctx.fill();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
}
