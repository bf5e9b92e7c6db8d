// The /ws connection: subscriptions that survive reconnects, backoff after a drop,
// frames handed to listeners by event name. (No DOM: the page shows feed.state.)

import { parseFrame } from "./checksum.js";

const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

export class Feed {
  constructor(url, { onState = () => {}, onReopen = () => {} } = {}) {
    this.url = url;
    this.onState = onState;
    this.onReopen = onReopen; // after a reconnect: what the socket missed comes from REST
    this.listeners = new Map(); // event -> [fn]
    this.subscriptions = new Map(); // key -> subscribe frame
    this.apiKey = null;
    this.socket = null;
    this.failures = 0;
    this.reconnects = 0;
    this.state = "connecting";
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(fn);
  }

  connect() {
    this.setState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.failures = 0;
      if (this.apiKey) this.send({ op: "auth", apiKey: this.apiKey });
      for (const frame of this.subscriptions.values()) this.send(frame);
      this.setState("live");
      if (this.reconnects) this.onReopen();
    };
    socket.onmessage = (message) => this.dispatch(message.data);
    socket.onclose = () => {
      if (this.socket !== socket) return; // replaced on purpose (new API key)
      const delay = BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length - 1)];
      this.failures += 1;
      this.reconnects += 1;
      this.setState("reconnecting", delay);
      setTimeout(() => this.connect(), delay * (0.8 + Math.random() * 0.4));
    };
  }

  /** Reconnect now (the API key changed: order_status must follow the new account). */
  restart() {
    const old = this.socket;
    this.socket = null;
    if (old) old.close();
    this.connect();
  }

  dispatch(text) {
    // Only orderbook frames need the numbers' source text (checksums); the others take
    // the fast path.
    const frame = text.includes('"checksum"') ? parseFrame(text) : JSON.parse(text);
    for (const fn of this.listeners.get(frame.event) || []) fn(frame);
  }

  send(frame) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(frame));
    }
  }

  subscribe(frame) {
    const full = { op: "subscribe", ...frame };
    this.subscriptions.set(subscriptionKey(frame), full);
    this.send(full);
  }

  unsubscribe(frame) {
    if (this.subscriptions.delete(subscriptionKey(frame))) {
      this.send({ op: "unsubscribe", ...frame });
    }
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }
}

function subscriptionKey(frame) {
  return [frame.channel, frame.symbol, frame.interval || "", frame.orderId || ""].join("/");
}
