"""The WebSocket transport (app.ws.transport) over a socket pair, no server: client
messages whole (fragmented or not), pings answered, ours sent and a missing pong closed
1008, the client's close echoed, protocol errors and over-long messages closed with
their codes, and the hub's non-blocking write. Outside gevent, so the threads flavour;
the framing and ping logic is the same code under gevent (tests/e2e cover that)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from app.ws.transport import HARD_FRAME_BYTES, Transport, text_frame


def client_frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """A masked client frame (mask key 0: the payload goes as is)."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def server_frames(peer: socket.socket, timeout: float = 2.0,
                  data: bytes = b"") -> list[tuple[int, bytes]]:
    """The (opcode, payload) frames the server sent, read until ``timeout`` of quiet
    (``data``: bytes of them read already)."""
    peer.settimeout(timeout)
    try:
        while True:
            chunk = peer.recv(65536)
            if not chunk:
                break
            data += chunk
            peer.settimeout(0.2)
    except TimeoutError:
        pass
    out = []
    while data:
        n, head = data[1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[2:10], "big"), 10
        out.append((data[0] & 0x0F, data[head:head + n]))
        data = data[head + n:]
    return out


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    made = []

    def open_transport(ping_interval: float = 0.0) -> Transport:
        t = Transport.open(server, sndbuf=65536, send_timeout=2.0, ping_interval=ping_interval)
        made.append(t)
        return t

    yield open_transport, client
    for t in made:
        t.release()
    client.close()
    server.close()


def wait_for_message(t: Transport, seconds: float = 2.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t.wait(0.1)
        message = t.take_inbound()
        if message is not None or not t.connected:
            return message
    return None


def test_messages_whole_and_in_order_pings_answered(pair):
    open_transport, client = pair
    t = open_transport()
    client.sendall(client_frame(b'{"op":"ping"}') + client_frame(b"hi", opcode=9)
                   + client_frame(b"ab", fin=False) + client_frame(b"cd", opcode=0)
                   + client_frame(b"\x01\x02", opcode=2))
    got = [wait_for_message(t), wait_for_message(t), wait_for_message(t)]
    assert got == ['{"op":"ping"}', "abcd", b"\x01\x02"]
    assert server_frames(client, 0.5) == [(10, b"hi")]  # the pong, with the ping's payload
    assert t.connected


def test_server_pings_and_closes_1008_without_pong(pair):
    open_transport, client = pair
    t = open_transport(ping_interval=0.5)
    t.wait(2.0)
    assert server_frames(client, 0.3) == [(9, b"")]
    client.sendall(client_frame(b"", opcode=10))  # the pong, within the interval
    t.wait(2.0)
    t.wait(2.0)
    assert t.connected
    assert [op for op, _ in server_frames(client, 0.3)] == [9]  # the next ping, unanswered
    for _ in range(10):
        t.wait(1.0)
    assert not t.connected
    assert server_frames(client, 0.5) == [(8, (1008).to_bytes(2, "big") + b"Ping/Pong timeout")]


def test_client_close_echoed(pair):
    open_transport, client = pair
    t = open_transport()
    client.sendall(client_frame((1000).to_bytes(2, "big") + b"bye", opcode=8))
    assert wait_for_message(t) is None and not t.connected
    assert server_frames(client, 0.5) == [(8, (1000).to_bytes(2, "big") + b"bye")]


def test_protocol_errors_closed_with_their_code(pair):
    open_transport, client = pair
    t = open_transport()
    client.sendall(bytes((0x81, 2)) + b"hi")  # unmasked: 1002
    assert wait_for_message(t) is None and not t.connected
    frames = server_frames(client, 0.5)
    assert len(frames) == 1 and frames[0][0] == 8
    assert int.from_bytes(frames[0][1][:2], "big") == 1002


def test_over_long_message_closed_1009(pair):
    open_transport, client = pair
    t = open_transport()
    client.setblocking(False)
    big = client_frame(b"x" * (HARD_FRAME_BYTES + 10))
    sent = 0
    deadline = time.monotonic() + 5
    while t.connected and time.monotonic() < deadline:
        try:
            sent += client.send(big[sent:sent + 65536])
        except BlockingIOError:
            pass
        except OSError:
            break
        t.wait(0.05)
        assert t.take_inbound() is None
    assert not t.connected
    client.setblocking(True)
    frames = server_frames(client, 0.5)
    assert frames[-1] == (8, (1009).to_bytes(2, "big") + b"Message is too big")


def test_send_nowait_and_close(pair):
    open_transport, client = pair
    t = open_transport()
    assert t.send_nowait(text_frame(b'{"a":1}')) and not t.pending
    t.send(text_frame(b'{"b":2}'))
    t.close(1001, "server shutting down")
    t.close(1001, "again")  # once
    assert server_frames(client, 0.5) == [
        (1, b'{"a":1}'), (1, b'{"b":2}'), (8, (1001).to_bytes(2, "big") + b"server shutting down")]


def test_peer_gone_is_not_connected(pair):
    open_transport, client = pair
    t = open_transport()
    client.close()
    assert wait_for_message(t) is None and not t.connected


def test_client_close_without_code_echoed_empty(pair):
    open_transport, client = pair
    t = open_transport()
    client.sendall(client_frame(b"", opcode=8))
    assert wait_for_message(t) is None and not t.connected
    assert server_frames(client, 0.5) == [(8, b"")]


def tcp_pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    return server, client


def unread(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False


def test_close_reads_on_to_the_clients_close():
    # A TCP socket closed with client bytes unread sends a reset instead of a FIN, and a
    # reset throws away what the server had not sent yet: a client still sending (ops,
    # the rest of an over-long message) could lose our close frame and its reason. So
    # after its close frame the server reads on, dropping what comes, to the client's.
    server, client = tcp_pair()
    t = Transport.open(server, sndbuf=65536, send_timeout=2.0, ping_interval=0.0)
    try:
        client.sendall(client_frame(b"x" * 1000) * 100)  # ops the server never reads
        time.sleep(0.05)
        got: list = []

        def client_side():  # reads to our close frame, then answers it, as clients do
            data = b""
            client.settimeout(3)
            while b"\x88\x08\x03\xf0policy" not in data and (chunk := client.recv(65536)):
                data += chunk
            got.extend(server_frames(client, 0.01, data))
            time.sleep(0.1)
            client.sendall(client_frame((1008).to_bytes(2, "big"), opcode=8))

        reader = threading.Thread(target=client_side)
        reader.start()
        started = time.monotonic()
        t.close(1008, "policy")
        took = time.monotonic() - started
        reader.join(5)
        assert got == [(8, (1008).to_bytes(2, "big") + b"policy")]
        assert not unread(server)  # closing it now sends a FIN, not a reset
        assert 0.1 <= took < 0.9  # back when the client's close came, not at the bound
    finally:
        t.release()
        client.close()
        server.close()


def test_close_waits_for_a_silent_client_a_bounded_time(monkeypatch):
    monkeypatch.setattr("app.ws.transport.CLOSE_REPLY_SECONDS", 0.3)
    server, client = tcp_pair()
    t = Transport.open(server, sndbuf=65536, send_timeout=2.0, ping_interval=0.0)
    try:
        started = time.monotonic()
        t.close(1001, "server shutting down")
        assert 0.25 <= time.monotonic() - started < 1.0
        assert server_frames(client, 0.5) == [
            (8, (1001).to_bytes(2, "big") + b"server shutting down")]
    finally:
        t.release()
        client.close()
        server.close()
