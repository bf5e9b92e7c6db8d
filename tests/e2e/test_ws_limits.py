"""WebSocket limits on real gunicorn (two workers, one Redis): a connection that floods
frames gets RATE_LIMITED, then a close with a reason; connections per client IP are
counted across the workers, the one past the limit gets an error and a close."""

from __future__ import annotations

import orjson
import pytest
import websocket

from tests.support import free_port, start_gunicorn, stop, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def url(redis_server, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("ws_limits") / "gunicorn.log"
    proc = start_gunicorn(redis_server.url, port, log, WEB_CONCURRENCY="2",
                          RATE_LIMITS="ws_frames=10/second ws_connections=3",
                          GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    yield f"ws://127.0.0.1:{port}/ws"
    stop(proc)


def close_reason(ws) -> tuple[int, bytes]:
    """Read until the close frame; returns (code, reason) and the text frames seen."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:]


def test_a_flood_of_frames_gets_rate_limited_then_closed(url):
    calm = websocket.create_connection(url, timeout=10)
    flood = websocket.create_connection(url, timeout=10)
    try:
        for _ in range(200):
            flood.send('{"op":"ping"}')
        seen = []
        while True:
            opcode, data = flood.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            seen.append(orjson.loads(data))
        assert (int.from_bytes(data[:2], "big"), data[2:]) == (1008, b"rate limit exceeded")
        errors = [m for m in seen if m["event"] == "error"]
        assert errors and all(m["code"] == "RATE_LIMITED" for m in errors)
        assert "frames" in errors[0]["message"]
        pongs = [m for m in seen if m["event"] == "pong"]
        assert 1 <= len(pongs) <= 10 * len(errors) + 10  # the flood was not served
        for _ in range(5):  # another connection is not affected
            calm.send('{"op":"ping"}')
            assert orjson.loads(calm.recv()) == {"event": "pong"}
    finally:
        calm.close()
        flood.close()


def test_connections_per_ip_are_counted_across_workers(url, redis_server):
    r = redis_server.client(decode_responses=True)

    def slots():
        return sum(r.zcard(k) for k in r.scan_iter("me:rl:ws:*"))

    wait_until(lambda: slots() == 0, timeout=10, what="earlier connections released")
    # Fresh TCP connections spread over the two workers; the count is one, in Redis.
    held = [websocket.create_connection(url, timeout=10) for _ in range(3)]
    try:
        for ws in held:
            ws.send('{"op":"ping"}')
            assert orjson.loads(ws.recv()) == {"event": "pong"}
        assert slots() == 3
        extra = websocket.create_connection(url, timeout=10)
        reply = orjson.loads(extra.recv())
        assert reply["event"] == "error" and reply["code"] == "TOO_MANY_CONNECTIONS"
        assert close_reason(extra) == (1008, b"too many connections")
        extra.close()
        held.pop().close()
        wait_until(lambda: slots() == 2, timeout=10, what="a slot released")
        again = websocket.create_connection(url, timeout=10)
        held.append(again)
        again.send('{"op":"ping"}')
        assert orjson.loads(again.recv()) == {"event": "pong"}
    finally:
        for ws in held:
            ws.close()
        r.close()
