// The local order book of one symbol, rebuilt from /ws orderbook frames (pure; no DOM).
// A snapshot replaces it; an update applies level totals (0 = level gone) and must chain:
// its prevSequence is the sequence of the last message applied. A broken chain or a
// checksum that disagrees with the local book means the page must subscribe again.

import { bookChecksum } from "./checksum.js";

export class LocalBook {
  constructor(symbol, { checksums = true } = {}) {
    this.symbol = symbol;
    this.checksums = checksums; // verify the frames' checksums (when they carry one)
    this.verified = 0; // frames whose checksum matched
    this.sequence = null; // null: no snapshot yet
    this.sides = { BUY: new Map(), SELL: new Map() };
  }

  /** Returns null when the book is good, else why it must be resubscribed. */
  applySnapshot(frame) {
    this.sides.BUY = new Map(frame.bids.map((l) => [l.price, l]));
    this.sides.SELL = new Map(frame.asks.map((l) => [l.price, l]));
    this.sequence = frame.sequence;
    return this.verify(frame);
  }

  applyUpdate(frame) {
    if (this.sequence === null) return null; // waiting for the snapshot
    if (frame.prevSequence !== this.sequence) {
      return `sequence gap: expected prevSequence ${this.sequence}, got ${frame.prevSequence}`;
    }
    for (const change of frame.changes) {
      const side = this.sides[change.side];
      if (change.quantity === 0) side.delete(change.price);
      else side.set(change.price, change);
    }
    this.sequence = frame.sequence;
    return this.verify(frame);
  }

  verify(frame) {
    if (!this.checksums || frame.checksum === undefined || frame.checksum === null) return null;
    const local = bookChecksum(this.bids(25), this.asks(25));
    if (local === frame.checksum) {
      this.verified += 1;
      return null;
    }
    return `checksum mismatch at ${frame.sequence}: local ${local}, server ${frame.checksum}`;
  }

  bids(n = Infinity) {
    return [...this.sides.BUY.values()].sort((a, b) => b.price - a.price).slice(0, n);
  }

  asks(n = Infinity) {
    return [...this.sides.SELL.values()].sort((a, b) => a.price - b.price).slice(0, n);
  }
}
