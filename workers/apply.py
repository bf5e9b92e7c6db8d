"""Apply a symbol's journal with the engine and commit each batch atomically.

journal after the cursor -> engine.apply each command -> store.commit (one MULTI/EXEC,
fenced by the lease and the cursor) -> published by the same transaction.
The in-memory book is a cache of Redis: whenever a commit does not land, it is
dropped and rebuilt from Redis before the next batch.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time

import redis

from archive import checkpoints
from engine import apply
from schemas.markets import Market
from settings import Settings
from store import candles, journal, replica_acks
from store.books import load_book
from store.commit import Fenced, commit
from workers import metrics

log = logging.getLogger(__name__)


class SymbolMatcher:
    """The single writer of one symbol's book, while it holds the symbol's lease."""

    def __init__(self, r: redis.Redis, market: Market, lease, settings: Settings):
        self.r, self.market, self.lease, self.settings = r, market, lease, settings
        self.symbol = market.symbol
        self.book = None
        self.candles = None  # store.candles.CandleCache of self.book

    @property
    def cursor(self) -> int | None:
        """The last applied sequence this matcher knows (None: book not loaded)."""
        book = self.book
        return None if book is None else book.last_sequence

    def step(self) -> int:
        """Apply and commit one batch of journaled commands; returns how many (0: none)."""
        if not self.lease.held:
            return 0
        # A local reference: the maintenance thread may drop self.book (lease lost) meanwhile.
        book = self.book if self.book is not None else load_book(self.r, self.symbol)
        self.book = book
        s = self.settings
        try:
            batch = journal.read_after(self.r, self.symbol, book.last_sequence,
                                       s.worker_batch)
            if batch and s.replica_acks:
                # Never publish a trade made from a command the replicas may lack: a
                # failover would lose it, and the trade a client saw would never have been.
                # Raises ReplicationTimeout (a RedisError: the task fails, the sweep retries).
                replica_acks.confirm_journal(self.r, self.symbol, s.replica_acks,
                                             s.replica_ack_timeout_ms)
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            # The store may be another primary now (a failover), whose cursor is behind
            # this book (commits not replicated): a book ahead of the cursor would wait for
            # journal entries past its own cursor and never be fenced. Reload it.
            self.book = None
            raise
        if not batch:
            return 0
        self._fault("after_read")
        try:
            self._apply_and_commit(book, batch)
        except Fenced as exc:
            metrics.FENCED.labels(self.symbol).inc()
            log.warning("commit fenced, rebuilding from Redis: %s", exc)
            self.book = None
            return 0
        except BaseException:
            self.book = None  # memory may be ahead of Redis: rebuild before going on
            raise
        return len(batch)

    def drain(self) -> int:
        """Apply everything journaled after the cursor; returns how many were applied."""
        applied = 0
        while n := self.step():
            applied += n
        return applied

    def _apply_and_commit(self, book, batch) -> None:
        prev = book.last_sequence
        events = []
        for command, request_id in batch:
            events.extend(apply(book, command))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("applied %s seq=%s order=%s request_id=%s", type(command).__name__,
                          command.sequence, getattr(command, "order_id", None), request_id)
        self._fault("before_commit")
        now_ms, started = int(time.time() * 1000), time.perf_counter()
        self.candles = candles.for_book(self.candles, self.r, self.symbol, book)
        commit(self.r, self.market, self.lease.token, prev, book.last_sequence, events, now_ms,
               book=book, candles=self.candles)
        metrics.observe_batch(self.symbol, batch, now_ms, time.perf_counter() - started)
        checkpoints.maybe_write(self.r, book, prev, self.settings.checkpoint_every)
        # One JSON line per batch (logging_setup): grep a web request id to find its commit.
        log.info("committed %s seq %d..%d (%d commands)", self.symbol, prev + 1,
                 book.last_sequence, len(batch), extra={
                     "symbol": self.symbol, "seq_from": prev + 1, "seq_to": book.last_sequence,
                     "commands": len(batch), "request_ids": [rid for _, rid in batch if rid]})
        self._fault("after_commit")

    def _fault(self, point: str) -> None:
        s = self.settings
        if point in s.fault_points and random.random() < s.fault_probability:
            log.warning("fault injection: killing the worker at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
