"""A per-symbol writer lease: the fence that keeps a second worker from corrupting a book.

The holder's token is stored with a TTL and renewed often; the commit script checks the
token first, so a worker that lost its lease cannot write.
"""

from __future__ import annotations

import uuid

import redis

from store import keys

# Renew only if we still hold it: compare-and-expire in one step.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, r: redis.Redis, symbol: str, ttl_ms: int = 3000,
                 holder: str = "matcher"):
        self.r, self.symbol, self.ttl_ms = r, symbol, ttl_ms
        # The archive mover ("archiver") has a lease of its own, never the matcher's.
        self.key = keys.archiver(symbol) if holder == "archiver" else keys.owner(symbol)
        self.token = uuid.uuid4().hex
        self.held = False
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    def renew(self) -> bool:
        """Take the lease if free, extend it if ours; returns whether we hold it."""
        self.held = bool(self._renew(keys=[self.key],
                                     args=[self.token, self.ttl_ms]))
        return self.held

    def release(self) -> None:
        self.held = False
        self._release(keys=[self.key], args=[self.token])
