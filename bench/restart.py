"""What a restart costs with many journaled commands, with and without book checkpoints.

``python -m bench.restart [--commands 200000] [--checkpoint-every 20000]``
(``make bench-restart``). Own redis-server and SQLite archive; the flow of
``bench.sustained`` through the real accept path and matcher, then, timed:

* the worker's restart as it is: ``store.books.load_book`` (the resting orders from Redis;
  it never replays the journal, so its cost follows the open orders, not the commands);
* rebuilding the book by replaying the whole journal (what a restart would cost if it
  replayed, and what ``verify --full`` does first);
* rebuilding it from the newest checkpoint plus the journal after it;
* ``archive.verify`` from the checkpoint and ``--full``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson

from archive import checkpoints, db
from archive.verify import check_symbol
from bench.sustained import CHUNK, SYMBOL, feed, local_matcher
from localrun.processes import RedisServer
from settings import Settings
from store import keys
from store.books import load_book


def _timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - started, 3)


def run(commands: int, every: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        url = f"sqlite:///{os.path.join(tmp, 'archive.sqlite3')}"
        try:
            settings = Settings(redis_url=server.url, archive_url=url, checkpoint_every=every)
            r, market, schema, matcher = local_matcher(server, settings)
            to_cancel: list[str] = []
            for start in range(0, commands, CHUNK):
                feed(r, schema, market, matcher, start, min(CHUNK, commands - start), to_cancel)
            applied = int(r.get(keys.applied(SYMBOL)))
            snap = orjson.loads(r.get(keys.checkpoint(SYMBOL)))
            book, t_load = _timed(lambda: load_book(r, SYMBOL))
            with db.engine(url).connect() as conn:
                _, t_full = _timed(lambda: checkpoints.replay_to(r, conn, SYMBOL, None, applied))
                from_ckpt, t_ckpt = _timed(
                    lambda: checkpoints.replay_to(r, conn, SYMBOL, snap, applied))
            assert checkpoints.snapshot(from_ckpt) == checkpoints.snapshot(book)
            assert checkpoints.verify_new(r, db.engine(url), SYMBOL) == snap["seq"]
            (diffs, _), t_verify_ckpt = _timed(lambda: check_symbol(r, settings, market))
            (full_diffs, _), t_verify_full = _timed(
                lambda: check_symbol(r, settings, market, full=True))
            assert diffs == [] and full_diffs == []
            return {
                "journaled_commands": applied, "resting_orders": len(book.orders),
                "checkpoint_at": snap["seq"], "journal_after_checkpoint": applied - snap["seq"],
                "worker_restart_load_book_s": t_load,
                "rebuild_by_full_journal_replay_s": t_full,
                "rebuild_from_checkpoint_s": t_ckpt,
                "verify_from_checkpoint_s": t_verify_ckpt, "verify_full_s": t_verify_full,
            }
        finally:
            server.stop()
            db.dispose_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--checkpoint-every", type=int, default=20_000)
    args = parser.parse_args()
    figures = run(args.commands, args.checkpoint_every)
    for name, value in figures.items():
        print(f"{name:36} {value}")
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
