// Order entry, the caller's open orders (cancel, reduce, cancel all) and recent fills.
// Live through order_status frames; everything else through REST.

import { api, ApiError, get, query } from "./api.js";
import { clock, el, fixed } from "./format.js";

const OPEN = new Set(["PENDING", "OPEN", "PARTIAL", "UNTRIGGERED"]);
const STOPS = new Set(["STOP_LIMIT", "STOP_MARKET"]);
const PRICED = new Set(["LIMIT", "STOP_LIMIT"]);
const MAX_FILLS = 30;

export class Orders {
  constructor(features, { form, result, openBody, fillsBody, cancelAll }) {
    this.features = features;
    this.form = form;
    this.result = result;
    this.openBody = openBody;
    this.fillsBody = fillsBody;
    this.market = null;
    this.open = new Map(); // id -> order
    this.filled = new Map(); // id -> filledQuantity seen
    this.fills = new Map(); // trade id -> {trade, side, role}
    this.accountId = null; // whose orders are shown (null: whatever the node sends)
    // Stop orders wait as UNTRIGGERED where the engine has them (api.md section 7).
    this.openStatuses = [...OPEN].filter((s) => features.stopOrders || s !== "UNTRIGGERED");
    for (const option of form.querySelectorAll("option")) {
      if ((STOPS.has(option.value) && !features.stopOrders)
          || (option.value === "GTD" && !features.gtd)) option.remove();
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); this.place(); });
    form.addEventListener("change", () => this.showFields());
    cancelAll.addEventListener("click", () => this.cancelAll());
    this.showFields();
  }

  async setMarket(market) {
    this.market = market;
    this.open.clear();
    this.filled.clear();
    this.fills.clear();
    this.render();
    await this.load();
  }

  /** The fields that apply to the chosen order type, and the time-in-force it allows. */
  showFields() {
    const type = this.form.orderType.value;
    const tif = this.form.timeInForce;
    const market = type === "MARKET" || type === "STOP_MARKET";
    for (const option of tif.options) {
      option.disabled = market && (option.value === "GTC" || option.value === "GTD");
    }
    if (tif.selectedOptions[0].disabled) tif.value = "IOC";
    const wasMarket = this.lastType === "MARKET" || this.lastType === "STOP_MARKET";
    if (!market && wasMarket) tif.value = "GTC"; // back from MARKET: the usual default
    this.lastType = type;
    this.toggle("price", PRICED.has(type));
    this.toggle("stop", STOPS.has(type));
    this.toggle("gtd", tif.value === "GTD");
    this.toggle("post", type === "LIMIT" && tif.value === "GTC");
  }

  toggle(name, shown) {
    this.form.querySelector(`[data-for="${name}"]`).hidden = !shown;
  }

  body() {
    const f = this.form;
    const type = f.orderType.value;
    const body = { symbol: this.market.symbol, side: f.side.value, orderType: type,
      quantity: f.quantity.value.trim() };
    if (PRICED.has(type)) body.price = f.price.value.trim();
    if (STOPS.has(type)) body.stopPrice = f.stopPrice.value.trim();
    body.timeInForce = f.timeInForce.value;
    if (body.timeInForce === "GTD") body.expireTime = new Date(f.expireTime.value).getTime();
    if (!f.querySelector('[data-for="post"]').hidden && f.postOnly.checked) body.postOnly = true;
    return body;
  }

  async place() {
    this.say("Placing…", "");
    try {
      const order = await api("POST", "/api/orders?wait=true&timeout=3000", this.body());
      this.upsert(order);
      const filled = order.filledQuantity ? ` · filled ${fixed(order.filledQuantity,
        this.market.lotDecimals)} @ ${fixed(order.averagePrice, this.market.priceDecimals + 4)}`
        : "";
      this.say(`${order.side} ${order.orderType} ${order.status}${order.reason
        ? ` (${order.reason})` : ""}${filled}`, "ok");
      if (order.fills) this.addFills(order, order.fills);
    } catch (error) {
      this.sayError(error);
    }
  }

  say(text, kind) {
    this.result.className = `form-result ${kind}`;
    this.result.replaceChildren(text);
  }

  sayError(error) {
    if (!(error instanceof ApiError)) return this.say(String(error), "error");
    const [message, ...lines] = error.lines();
    this.result.className = "form-result error";
    this.result.replaceChildren(`${error.code}: ${message}`,
      lines.length ? el("ul", {}, ...lines.map((line) => el("li", {}, line))) : null);
  }

  async load() {
    const symbol = this.market.symbol;
    let listed;
    try {
      listed = await get(`/api/orders?${query({ symbol, status: this.openStatuses.join(","),
        limit: 200 })}`);
    } catch (error) {
      if (error.status !== 401) this.sayError(error);
      return;
    }
    if (symbol !== this.market.symbol) return;
    for (const order of listed.orders) this.upsert(order, false);
    const recent = await get(`/api/orders?${query({ symbol, limit: 20 })}`).catch(() => null);
    const withFills = (recent ? recent.orders : []).filter((o) => o.filledQuantity > 0);
    await Promise.all(withFills.slice(0, 6).map((o) => this.loadFills(o)));
    this.render();
  }

  async loadFills(order) {
    const full = await get(`/api/orders/${encodeURIComponent(order.id)}`).catch(() => null);
    if (full && full.fills) this.addFills(full, full.fills);
  }

  /** An order_status frame or a REST answer: keep it if open, drop it once final. */
  upsert(order, render = true) {
    if (!this.market || order.symbol !== this.market.symbol) return;
    // order_status by symbol carries every account's orders on a node without auth
    if (this.accountId && order.accountId && order.accountId !== this.accountId) return;
    const before = this.filled.get(order.id) ?? 0;
    this.filled.set(order.id, order.filledQuantity);
    if (OPEN.has(order.status)) this.open.set(order.id, order);
    else this.open.delete(order.id);
    if (render && order.filledQuantity > before) this.loadFills(order);
    if (render) this.render();
  }

  addFills(order, trades) {
    for (const trade of trades) {
      this.fills.set(trade.id, { trade, side: trade.buyOrderId === order.id ? "BUY" : "SELL",
        role: trade.makerOrderId === order.id ? "maker" : "taker" });
    }
    this.render();
  }

  async cancel(order) {
    try {
      this.upsert(await api("DELETE", `/api/orders/${encodeURIComponent(order.id)}?wait=true`));
    } catch (error) {
      this.sayError(error);
    }
  }

  async reduce(order, quantity) {
    try {
      this.upsert(await api("PATCH", `/api/orders/${encodeURIComponent(order.id)}?wait=true`,
        { quantity }));
    } catch (error) {
      this.sayError(error);
    }
  }

  async cancelAll() {
    if (!this.features.cancelAll) { // this node has no DELETE /api/orders: one by one
      await Promise.all([...this.open.values()].map((order) => this.cancel(order)));
      return;
    }
    try {
      const answer = await api("DELETE", `/api/orders?${query({ symbol: this.market.symbol,
        wait: "true" })}`);
      for (const order of answer.orders || []) this.upsert(order);
    } catch (error) {
      this.sayError(error);
    }
  }

  render() {
    const m = this.market;
    if (!m) return;
    const orders = [...this.open.values()].sort((a, b) => b.sequence - a.sequence);
    this.openBody.replaceChildren(...orders.map((order) => this.orderRow(order)));
    const fills = [...this.fills.values()].sort((a, b) => b.trade.sequence - a.trade.sequence)
      .slice(0, MAX_FILLS);
    this.fillsBody.replaceChildren(...fills.map(({ trade, side, role }) => el("tr", {},
      el("td", { className: `side-${side}` }, side), el("td", {}, fixed(trade.price,
        m.priceDecimals)), el("td", {}, fixed(trade.quantity, m.lotDecimals)),
      el("td", {}, role), el("td", {}, clock(trade.timestamp)))));
  }

  orderRow(order) {
    const m = this.market;
    const row = el("tr", { className: "order" });
    row.dataset.orderId = order.id;
    const cancel = el("button", { type: "button", className: "cancel", title: "Cancel" },
      "Cancel");
    cancel.addEventListener("click", () => this.cancel(order));
    const actions = el("td", {});
    if (this.features.reduce && order.orderType !== "MARKET") {
      const reduce = el("button", { type: "button", className: "reduce",
        title: "Reduce to a smaller total quantity" }, "Reduce");
      reduce.addEventListener("click", () => this.askReduce(order, actions));
      actions.append(reduce);
    }
    actions.append(cancel);
    row.append(el("td", { className: `side-${order.side}` }, order.side),
      el("td", {}, order.orderType), el("td", {}, fixed(order.price, m.priceDecimals)),
      el("td", {}, order.stopPrice ? fixed(order.stopPrice, m.priceDecimals) : ""),
      el("td", {}, fixed(order.quantity, m.lotDecimals)),
      el("td", {}, fixed(order.filledQuantity, m.lotDecimals)),
      el("td", {}, order.status), actions);
    return row;
  }

  askReduce(order, cell) {
    const input = el("input", { inputMode: "decimal", placeholder: "new total",
      value: fixed(order.quantity, this.market.lotDecimals) });
    const ok = el("button", { type: "submit" }, "OK");
    const form = el("form", { className: "reduce-form" }, input, ok);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.reduce(order, input.value.trim());
    });
    cell.replaceChildren(form);
    input.focus();
  }
}
