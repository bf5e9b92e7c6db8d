"""Move a symbol's history from Redis to the archive: copy and commit first, remove second.

One ``Mover.step`` takes a bounded batch of
* final orders (FILLED/CANCELLED/REJECTED) whose last change is older than
  ``archive_after_seconds`` (the ``final`` index the commit script keeps, oldest first),
  with their hashes and fills lists;
* the oldest trades, while older than the same age (a prefix of the trades stream);
* the oldest journal entries, while older than that age and at or below the newest
  verified book checkpoint (``archive.checkpoints``; a prefix of the journal: replays read
  the archive's part first);

inserts them in the archive in one transaction (a row already there is skipped), commits,
and only then removes them from Redis with ``store/lua/remove.lua``
(``store.history.remove_moved``): one atomic step, fenced by
the symbol's archiver lease, that removes an order only if it is still final with the
``updatedAt`` that was copied. A crash anywhere leaves every row in Redis, in the
archive, or in both; the next run finishes the move (copying again is a no-op).

The matcher never waits for any of this: the mover is another process, takes no matcher
lock, and each step is one short Lua call on the Redis side.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time
from dataclasses import dataclass

import orjson
import redis

from archive import checkpoints, db, tables
from settings import Settings
from store import history
from store.lease import Lease

log = logging.getLogger(__name__)
FINAL = {"FILLED", "CANCELLED", "REJECTED"}


@dataclass
class Moved:
    orders: int = 0
    trades: int = 0
    journal: int = 0
    changed: int = 0

    def add(self, other: Moved) -> None:
        for name in ("orders", "trades", "journal", "changed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def any(self) -> bool:
        return bool(self.orders or self.trades or self.journal)


class Mover:
    """The archive mover of one symbol (its own lease: never two movers on one symbol)."""

    def __init__(self, r: redis.Redis, settings: Settings, symbol: str):
        self.r, self.settings, self.symbol = r, settings, symbol
        self.engine = db.engine(settings.archive_url)
        self.lease = Lease(r, symbol, ttl_ms=settings.archive_lease_ms,
                           holder="archiver")
        self.journal_upto: int | None = None  # the newest verified checkpoint's sequence

    def run(self, budget_seconds: float = 5.0) -> Moved:
        """Steps until nothing is due or the budget is spent; returns what moved."""
        total = Moved()
        self.journal_upto = None  # a new run looks for a newer checkpoint
        deadline = time.monotonic() + budget_seconds
        try:
            while time.monotonic() < deadline:
                moved = self.step()
                total.add(moved)
                if not moved.any:
                    break
        finally:
            if self.lease.held:
                self.lease.release()
        return total

    def step(self, now_ms: int | None = None) -> Moved:
        if not self.lease.renew():
            return Moved()
        if self.journal_upto is None:  # once per run: verifying replays the journal
            self.journal_upto = checkpoints.verify_new(self.r, self.engine, self.symbol)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now_ms - int(self.settings.archive_after_seconds * 1000)
        batch = self.settings.archive_batch
        orders, fills = self._final_orders(cutoff, batch)
        trade_rows = self._trades(cutoff, batch)
        journal_rows = self._journal(cutoff, batch)
        if not (orders or trade_rows or journal_rows):
            return Moved()
        with self.engine.begin() as conn:
            # An order copied again (a run that died before its removal) is the same row;
            # should it ever differ, the newest copy wins, as the removal re-checks it.
            db.insert_ignore(conn, tables.orders, orders, update=True)
            db.insert_ignore(conn, tables.order_fills, fills)
            db.insert_ignore(conn, tables.trades, trade_rows)
            db.insert_ignore(conn, tables.journal, journal_rows)
            self._fault("archive_before_commit")
        self._fault("archive_after_commit")
        removed, changed = self._remove_from_redis(orders, trade_rows, journal_rows)
        self._fault("archive_after_remove")
        if changed:
            log.error("%s: %d orders changed after they were final; left in Redis",
                      self.symbol, changed)
        return Moved(removed, len(trade_rows), len(journal_rows), changed)

    # ------------------------------------------------------------ reading Redis

    def _final_orders(self, cutoff: int, batch: int) -> tuple[list[dict], list[dict]]:
        due = history.final_orders_due(self.r, self.symbol, cutoff, batch)
        orders, fills = [], []
        for oid, h, seqs in due:
            if not h or h.get("status") not in FINAL:
                continue  # gone already (the remove step clears the index entry) or odd
            orders.append({"id": oid, "symbol": h["sym"], "account": h["acct"],
                           "n": int(h["n"]), "status": h["status"], "side": h["side"],
                           "coid": h.get("coid") or None, "updated_at": int(h["upd"]),
                           "fields": orjson.dumps(h).decode()})
            fills += [{"order_id": oid, "trade_seq": int(s), "symbol": self.symbol}
                      for s in seqs]
        if len(orders) < len(due):
            # Index entries whose hash is gone: drop them (same fenced script, no orders).
            gone = [oid for oid, h, _ in due if not h]
            if gone:
                self._run_remove([(oid, "", "") for oid in gone])
        return orders, fills

    def _trades(self, cutoff: int, batch: int) -> list[dict]:
        rows = []
        for seq, body in history.oldest_trades(self.r, self.symbol, batch):
            trade = orjson.loads(body)
            if trade["timestamp"] >= cutoff:
                break
            rows.append({"symbol": self.symbol, "seq": seq, "ts": trade["timestamp"],
                         "body": body})
        return rows

    def _journal(self, cutoff: int, batch: int) -> list[dict]:
        upto = self.journal_upto or 0
        if not upto:
            return []
        rows = []
        for seq, f in history.oldest_journal(self.r, self.symbol, upto, batch):
            if int(f["ts"]) >= cutoff:
                break
            rows.append({"symbol": self.symbol, "seq": seq, "fields": orjson.dumps(f).decode()})
        return rows

    # ------------------------------------------------------------ removing from Redis

    def _remove_from_redis(self, orders, trade_rows, journal_rows) -> tuple[int, int]:
        return self._run_remove(
            [(o["id"], str(o["updated_at"]), o["account"]) for o in orders],
            trade_rows, journal_rows)

    def _run_remove(self, orders, trade_rows=(), journal_rows=()) -> tuple[int, int]:
        """``orders``: (id, updatedAt copied, account); trades and journal up to the last row
        given are trimmed."""
        return history.remove_moved(
            self.r, self.symbol, self.lease.token, orders,
            trade_rows[-1]["seq"] + 1 if trade_rows else None,
            journal_rows[-1]["seq"] + 1 if journal_rows else None)

    def _fault(self, point: str) -> None:
        s = self.settings
        if point in s.fault_points and random.random() < s.fault_probability:
            log.warning("fault injection: killing the mover at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)


def move_symbol(r: redis.Redis, settings: Settings, symbol: str,
                budget_seconds: float = 5.0) -> Moved:
    return Mover(r, settings, symbol).run(budget_seconds)
