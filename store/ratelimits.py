"""The rate limiter's own Redis commands (``app/ratelimit.py`` decides; this counts).

Its keys are not the matching engine's: they live under ``me:rl`` on the limiter's Redis
(``RATE_LIMIT_REDIS_URL``, else the store's), one key per limit window or client IP.
"""

from __future__ import annotations

import time

import redis

KEY_PREFIX = "me:rl"


def incr_expire_all(storage, keys_: list[tuple[str, int]], cost: int) -> list[int]:
    """The ``limits`` storage's INCRBY+EXPIRE script on every (key, window seconds), in one
    round trip: a pipeline of EVALSHAs (redis-py's Script in a pipeline would first ask
    SCRIPT EXISTS, a second round trip per request). The script is loaded by the
    storage's own ``incr`` the first time, or after a Redis restart lost it."""
    script = storage.lua_incr_expire
    for attempt in (1, 2):
        pipe = storage.get_connection().pipeline(transaction=False)
        for key, length in keys_:
            pipe.evalsha(script.sha, 1, storage.prefixed_key(key), length, cost)
        try:
            return [int(c) for c in pipe.execute()]
        except redis.exceptions.NoScriptError:
            if attempt == 2:
                raise
            storage.get_connection().script_load(script.script)
    raise AssertionError("unreachable")


class ConnectionSlots:
    """WebSocket connections per client IP (``ws_connections``), across every web node:
    a sorted set per IP in Redis, member = connection id, score = when it lapses. A live
    connection renews its slot (``renew``, every ``RENEW_S``); a web process that died
    leaves slots that lapse after ``TTL_S``."""

    TTL_S = 90
    RENEW_S = 30

    def __init__(self, r, maximum: int):
        self.r, self.maximum = r, maximum

    def _key(self, ip: str) -> str:
        return f"{KEY_PREFIX}:ws:{ip}"

    def acquire(self, ip: str, conn_id: str) -> bool:
        key, now = self._key(ip), time.time()
        with self.r.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {conn_id: now + self.TTL_S})
            pipe.zcard(key)
            pipe.expire(key, self.TTL_S)
            count = pipe.execute()[2]
        if count > self.maximum:
            self.r.zrem(key, conn_id)
            return False
        return True

    def renew(self, ip: str, conn_id: str) -> None:
        self.r.zadd(self._key(ip), {conn_id: time.time() + self.TTL_S}, xx=True)
        self.r.expire(self._key(ip), self.TTL_S)

    def release(self, ip: str, conn_id: str) -> None:
        self.r.zrem(self._key(ip), conn_id)
