"""REPLICA_ACKS: an accepted command is on N replicas before the client hears of it.

Redis's ``WAIT n timeout`` counts the replicas that acknowledged the CALLING
connection's last write, so it must run on the connection that ran the accept. The web's
store client is therefore built (``store.connect``) with connections of ``acking(cls)``:
every script call (EVALSHA/EVAL: on the web every script is an accept, cancel, amend,
replace or cancel-all, see store/journal.py) is sent with a ``WAIT`` right behind it in
the same write, and its reply is returned only once the WAIT answered: one round trip,
the same connection, nothing for the callers to remember. Pipelines (a batch of accepts)
get one WAIT after their last command. Too few acknowledgements within the timeout raise
``ReplicationTimeout`` (the web answers 503 ``REPLICATION_TIMEOUT``: the command may
still take effect, and a retry with the same clientOrderId returns it).

The matcher must not publish a trade made from a command that the replicas do not have
(a failover would lose the command, and the trade a client saw would never have been):
before applying a batch it calls ``confirm`` (a write and a WAIT on one connection of the
symbol's node); the replication stream is ordered, so the journal entries read before
that write are on the replicas once it is.
"""

from __future__ import annotations

import time

import redis

from store import keys

ACKED_COMMANDS = frozenset({"EVALSHA", "EVAL", "FCALL"})


class ReplicationTimeout(redis.exceptions.RedisError):
    """Fewer replicas than REPLICA_ACKS acknowledged a write within the timeout."""

    def __init__(self, wanted: int, acked: int, timeout_ms: int):
        super().__init__(f"{acked} of {wanted} replicas acknowledged within {timeout_ms} ms")
        self.wanted, self.acked, self.timeout_ms = wanted, acked, timeout_ms


def _is_acked(args) -> bool:
    name = args[0]
    if isinstance(name, bytes):
        name = name.decode()
    return str(name).upper() in ACKED_COMMANDS


_classes: dict = {}


def acking(connection_class, replicas: int, timeout_ms: int):
    """``connection_class`` whose script calls wait for ``replicas`` acknowledgements."""
    key = (connection_class, replicas, timeout_ms)
    if key in _classes:
        return _classes[key]

    class AckingConnection(connection_class):
        # Replies still to read before the WAIT's own (0: no WAIT in flight).
        _ack_after = 0

        def send_command(self, *args, **kwargs):
            if not _is_acked(args):
                return super().send_command(*args, **kwargs)
            # pack_commands appends the WAIT and counts the reply to read before it.
            self.send_packed_command(self.pack_commands([args]),
                                     check_health=kwargs.get("check_health", True))

        def pack_commands(self, commands):
            commands = list(commands)
            if any(_is_acked(c) for c in commands):  # one WAIT after the last command
                self._ack_after = len(commands)
                commands.append(("WAIT", replicas, timeout_ms))
            return super().pack_commands(commands)

        def read_response(self, *args, **kwargs):
            if not self._ack_after:
                return super().read_response(*args, **kwargs)
            self._ack_after -= 1
            error = None
            try:
                reply = super().read_response(*args, **kwargs)
            except redis.exceptions.ResponseError as exc:  # the reply was read: go on
                error, reply = exc, None
            except BaseException:
                self._ack_after = 0  # the connection is dropped; nothing more to read
                raise
            if self._ack_after:
                if error is not None:
                    raise error
                return reply
            try:
                acked = super().read_response()
            except redis.exceptions.ResponseError:
                acked = 0  # WAIT refused (a replica now): unacknowledged
            if error is not None:
                raise error
            if int(acked) < replicas:
                raise ReplicationTimeout(replicas, int(acked), timeout_ms)
            return reply

        def disconnect(self, *args, **kwargs):
            self._ack_after = 0
            return super().disconnect(*args, **kwargs)

    AckingConnection.__name__ = f"Acking{connection_class.__name__}"
    _classes[key] = AckingConnection
    return AckingConnection


def confirm_journal(r, symbol: str, replicas: int, timeout_ms: int) -> None:
    """Return once the journal of ``symbol`` as read so far is on ``replicas`` replicas
    (the write is the matcher's heartbeat, ms since the epoch, as the maintenance writes it)."""
    confirm(r, keys.heartbeat(symbol), int(time.time() * 1000), replicas, timeout_ms)


def confirm(r, key: str, value, replicas: int, timeout_ms: int) -> None:
    """Return once what Redis holds now is on ``replicas`` replicas of ``key``'s node:
    one write (SET key value; a write that changes nothing is not replicated, so it
    would not move the WAIT's offset) and a WAIT on the same connection."""
    node = r
    if isinstance(r, redis.RedisCluster):
        node = r.get_redis_connection(r.get_node_from_key(key))
    try:
        with node.pipeline(transaction=False) as pipe:
            pipe.set(key, value)
            pipe.execute_command("WAIT", replicas, timeout_ms)
            _, acked = pipe.execute()
    except redis.exceptions.ResponseError as exc:  # MOVED, READONLY, CLUSTERDOWN: failover
        raise redis.exceptions.ConnectionError(f"confirming replication: {exc}") from exc
    if int(acked) < replicas:
        raise ReplicationTimeout(replicas, int(acked), timeout_ms)
