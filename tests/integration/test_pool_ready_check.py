"""store.pool's quick ready check (the OS's poll instead of gevent's) answers
``can_read()`` as redis-py's own does: False on a clean connection, True with a reply
left unread, and the same outcome on a connection the server closed. And the store's
clients act on it: a connection given back with a reply unread is not handed out as is."""

from __future__ import annotations

import time

import redis

from store import connect
from store.pool import _QuickReadyCheck, waiting_client


def _connections(redis_url):
    quick = waiting_client(redis_url, max_connections=2, wait_seconds=1).connection_pool
    plain = redis.ConnectionPool.from_url(redis_url)
    out = [quick.get_connection(), plain.get_connection()]
    assert isinstance(out[0], _QuickReadyCheck) and not isinstance(out[1], _QuickReadyCheck)
    return out


def _outcome(conn):
    try:
        return conn.can_read()
    except redis.ConnectionError as exc:
        return type(exc)


def test_can_read_answers_as_redis_py(redis_url, r):
    conns = _connections(redis_url)
    assert [_outcome(c) for c in conns] == [False, False]
    for conn in conns:
        conn.send_command("PING")  # the reply is never read
    time.sleep(0.05)
    assert [_outcome(c) for c in conns] == [True, True]
    for conn in conns:
        conn.read_response()
    assert [_outcome(c) for c in conns] == [False, False]
    for i, conn in enumerate(conns):
        conn.send_command("CLIENT", "SETNAME", f"ready-check-{i}")
        assert conn.read_response() in (b"OK", "OK", True)
    for c in r.client_list():
        if c["name"].startswith("ready-check-"):
            r.client_kill_filter(_id=c["id"])
    time.sleep(0.05)
    quick, plain = (_outcome(c) for c in conns)
    assert quick == plain


def test_a_reply_left_unread_never_answers_the_next_command(settings, r):
    # redis-py 8's RESP3 default turns maintenance notifications to "auto", and with them
    # on its pools skip this check: the GET below answered PONG (store.connect says why).
    r.set("stray", "value")
    clients = [connect.store_client(settings, max_connections=1, wait_seconds=1,
                                    decode_responses=True),
               connect.tool_client(settings)]
    for client in clients:
        pool = client.connection_pool
        conn = pool.get_connection()
        conn.send_command("PING")  # a command cut off between its write and its read
        time.sleep(0.05)  # its reply has arrived
        pool.release(conn)
        assert client.get("stray") == "value"
        assert client.get("stray") == "value"
        client.close()
