"""What the matching worker's maintenance thread and idle path do to Redis
(``workers/runtime.py``): heartbeats, wake-up flags, the volume buckets' pruning."""

from __future__ import annotations

import redis

from store import keys


def beat(r: redis.Redis, symbol: str, now_ms: int) -> tuple[int, int]:
    """Write the matcher's heartbeat; returns (accepted sequence, applied cursor)."""
    with r.pipeline(transaction=False) as pipe:
        pipe.set(keys.heartbeat(symbol), now_ms)
        pipe.get(keys.seq(symbol))
        pipe.get(keys.applied(symbol))
        _, accepted, applied = pipe.execute()
    return int(accepted or 0), int(applied or 0)


def claim_wake(r: redis.Redis, symbol: str) -> bool:
    """Set the symbol's wake flag unless set: True if this caller must send the task."""
    return bool(r.set(keys.wake(symbol), "1", nx=True, px=1000))


def clear_wakes(r: redis.Redis, symbols) -> None:
    """Clear the wake flags (the worker goes idle: the next accept sends a task). One DEL
    per key: each symbol's flag is in its own slot."""
    with r.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.delete(keys.wake(symbol))
        pipe.execute()


def prune_volume(r: redis.Redis, symbol: str, oldest_minute: int) -> None:
    """Drop the volume buckets (minute -> lots) older than ``oldest_minute``."""
    old = [m for m in r.hkeys(keys.volume(symbol)) if int(m) < oldest_minute]
    if old:
        r.hdel(keys.volume(symbol), *old)
