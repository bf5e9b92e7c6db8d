"""/ws end to end: real gunicorn (gunicorn.conf.py), real redis-server, real websocket
clients. Commits are published into Redis here the way the matching worker does (book
keys, applied cursor, trades stream and the PUBLISH in one MULTI/EXEC), so these checks
stand on their own; the worker-driven checks live beside them."""

from __future__ import annotations

import socket
import threading
import time
import zlib

import orjson
import pytest
import websocket

from app.events import EventHub
from localrun.synthetic import stage_commit
from schemas.checksum import checksum_of_levels
from schemas.markets import get_market
from settings import Settings
from store import keys, read
from tests.support import RedisServer, free_port, start_gunicorn, stop
from tests.support import http_json as support_http_json

pytestmark = pytest.mark.slow

BTC, ETH = "BTC-USD", "ETH-USD"
API_KEYS = "key-alice:alice,key-bob:bob"
SETTINGS = Settings()


# ---------------------------------------------------------------- processes


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "gunicorn.log"
    proc = start_gunicorn(redis_server.url, port, log, API_KEYS=API_KEYS, WEB_CONCURRENCY="2",
                          GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    yield f"ws://127.0.0.1:{port}/ws"
    stop(proc)


@pytest.fixture(scope="module")
def web_auth(redis_server, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("web_auth") / "gunicorn.log"
    proc = start_gunicorn(redis_server.url, port, log, API_KEYS=API_KEYS, AUTH_REQUIRED="true",
                          WEB_CONCURRENCY="1", GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    yield f"ws://127.0.0.1:{port}/ws"
    stop(proc)


# ---------------------------------------------------------------- client side


class Client:
    def __init__(self, url: str, **kwargs):
        self.ws = websocket.create_connection(url, timeout=10, **kwargs)

    def send(self, obj) -> None:
        self.ws.send(obj if isinstance(obj, str) else orjson.dumps(obj).decode())

    def recv(self) -> dict:
        return orjson.loads(self.ws.recv())

    def call(self, obj) -> dict:
        self.send(obj)
        return self.recv()

    def subscribe(self, channel: str, **target) -> dict:
        reply = self.call({"op": "subscribe", "channel": channel, **target})
        assert reply["event"] == "subscribed", reply
        return reply

    def nothing_pending(self) -> None:
        """Everything sent before this ping arrived before its pong."""
        assert self.call({"op": "ping"}) == {"event": "pong"}

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


@pytest.fixture
def connect(web):
    clients = []

    def _connect(url: str = web, **kwargs) -> Client:
        c = Client(url, **kwargs)
        clients.append(c)
        return c

    yield _connect
    for c in clients:
        c.close()


# ---------------------------------------------------------------- worker stand-in

TICKS = {BTC: 100, ETH: 100}  # 0.01
LOTS = {BTC: 1000, ETH: 100}  # 0.001 / 0.01


def commit(r, symbol, sequence, prev, changes=(), trades=(), orders=(), publish=True,
           checksum=True):
    """What the worker's commit does: levels, trades, cursor and the message (with the
    book's checksum unless ``checksum`` is False: it costs a book read here)."""
    message = {"type": "commit", "symbol": symbol, "sequence": sequence,
               "prevSequence": prev, "timestamp": int(time.time() * 1000),
               "changes": list(changes), "trades": list(trades), "orders": list(orders)}
    with r.pipeline(transaction=True) as pipe:
        stage_commit(pipe, message, TICKS[symbol], LOTS[symbol])
        with_checksum = bool(changes and checksum)
        if publish and not with_checksum:  # one transaction, as the worker's
            pipe.spublish(keys.events_channel(symbol), orjson.dumps(message))
        pipe.execute()
    if with_checksum:  # as the worker does: the checksum of the book after the commit
        _, bids, asks = store_levels(r, symbol)
        message["checksum"] = checksum_of_levels(bids, asks)
        if publish:
            r.spublish(keys.events_channel(symbol), orjson.dumps(message))
    return message


def level(side, price, quantity, orders=1):
    return {"side": side, "price": price, "quantity": quantity, "orders": orders}


def trade(symbol, seq, price=100.0, quantity=0.5):
    return {"id": f"trd_{symbol}_{seq}", "symbol": symbol, "buyOrderId": "ob", "sellOrderId": "os",
            "makerOrderId": "os", "takerOrderId": "ob", "takerSide": "BUY", "price": price,
            "quantity": quantity, "sequence": seq, "timestamp": int(time.time() * 1000)}


def order(order_id, account="anonymous", symbol=BTC, status="OPEN", seq=1):
    return {"id": order_id, "clientOrderId": None, "symbol": symbol, "type": "BUY", "side": "BUY",
            "orderType": "LIMIT", "timeInForce": "GTC", "postOnly": False, "price": 100.0,
            "quantity": 1.0, "filledQuantity": 0.0, "remainingQuantity": 1.0,
            "averagePrice": None, "status": status, "reason": None, "sequence": seq,
            "timestamp": 1, "updatedAt": 1, "accountId": account}


def accepted(r, symbol, orders):
    r.spublish(keys.events_channel(symbol),
              orjson.dumps({"type": "accepted", "symbol": symbol, "orders": orders}))


def apply_book(book: dict, msg: dict) -> None:
    """Client-side book: snapshot replaces, update sets each level's total (0 removes)."""
    if msg["type"] == "snapshot":
        book.clear()
        for side, levels in (("BUY", msg["bids"]), ("SELL", msg["asks"])):
            for lv in levels:
                book[(side, lv["price"])] = (lv["quantity"], lv["orders"])
    else:
        for ch in msg["changes"]:
            if ch["quantity"] == 0:
                book.pop((ch["side"], ch["price"]), None)
            else:
                book[(ch["side"], ch["price"])] = (ch["quantity"], ch["orders"])
    assert msg["checksum"] == client_checksum(book), msg


def client_checksum(book: dict) -> int:
    """What a client computes (api.md: CRC32 over the best 25 bids then asks as
    ``price:quantity`` joined by ``|``), written independently of schemas.checksum:
    Python's float repr is the JSON text of these numbers."""
    bids = sorted(((p, q) for (side, p), (q, _) in book.items() if side == "BUY"),
                  reverse=True)[:25]
    asks = sorted((p, q) for (side, p), (q, _) in book.items() if side == "SELL")[:25]
    text = "|".join(f"{p!r}:{q!r}" for p, q in bids + asks)
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def store_levels(r, symbol) -> tuple[int, list, list]:
    rd = r.__class__(connection_pool=r.connection_pool.__class__(
        **{**r.connection_pool.connection_kwargs, "decode_responses": True}))
    snap = read.orderbook(rd, get_market(SETTINGS, symbol), 1000)
    rd.close()
    return snap["sequence"], snap["bids"], snap["asks"]


def store_book(r, symbol) -> tuple[int, dict]:
    sequence, bids, asks = store_levels(r, symbol)
    book = {}
    for side, levels in (("BUY", bids), ("SELL", asks)):
        for lv in levels:
            book[(side, lv["price"])] = (lv["quantity"], lv["orders"])
    return sequence, book


# ---------------------------------------------------------------- tests


def test_ping_subscribe_unsubscribe(connect, r):
    c = connect()
    assert c.call({"op": "ping"}) == {"event": "pong"}
    assert c.subscribe("trade", symbol=BTC) == {"event": "subscribed", "channel": "trade",
                                                 "symbol": BTC}
    commit(r, BTC, 1, 0, trades=[trade(BTC, 1)])
    got = c.recv()
    assert got["event"] == "trade" and got["sequence"] == 1 and got["id"] == "trd_BTC-USD_1"
    assert c.call({"op": "unsubscribe", "channel": "trade", "symbol": BTC}) == {
        "event": "unsubscribed", "channel": "trade", "symbol": BTC}
    commit(r, BTC, 2, 1, trades=[trade(BTC, 2)])
    time.sleep(0.2)
    c.nothing_pending()  # no trade after unsubscribe


def test_bad_frames_answered_and_socket_stays_open(connect, r):
    c = connect()
    cases = [
        ("not json", "BAD_FRAME"),
        ("[1, 2]", "BAD_FRAME"),
        ({"op": "dance"}, "UNKNOWN_OP"),
        ({"channel": "trade"}, "UNKNOWN_OP"),
        ({"op": "subscribe", "channel": "klines", "symbol": BTC}, "UNKNOWN_CHANNEL"),
        ({"op": "subscribe", "channel": "candles", "symbol": BTC}, "BAD_FRAME"),
        ({"op": "subscribe", "channel": "trade", "symbol": "DOGE-USD"}, "UNKNOWN_SYMBOL"),
        ({"op": "subscribe", "channel": "trade"}, "BAD_FRAME"),
        ({"op": "subscribe", "channel": "orderbook", "orderId": "ord_1"}, "BAD_FRAME"),
        ({"op": "subscribe", "channel": "order_status"}, "BAD_FRAME"),
        ({"op": "subscribe", "channel": "trade", "symbol": BTC, "extra": 1}, "BAD_FRAME"),
        ({"op": "subscribe", "channel": "trade", "symbol": 5}, "BAD_FRAME"),
        ({"op": "auth"}, "BAD_FRAME"),
        ({"op": "auth", "apiKey": "nope"}, "AUTH_FAILED"),
        ({"op": "ping", "pad": "x" * (70 * 1024)}, "FRAME_TOO_LARGE"),
    ]
    for frame, code in cases:
        reply = c.call(frame)
        assert reply["event"] == "error" and reply["code"] == code, (frame, reply)
        assert reply["message"]
    for i in range(100):
        c.subscribe("order_status", orderId=f"ord_{i}")
    reply = c.call({"op": "subscribe", "channel": "trade", "symbol": BTC})
    assert reply["code"] == "TOO_MANY_SUBSCRIPTIONS"
    c.nothing_pending()
    c.call({"op": "unsubscribe", "channel": "order_status", "orderId": "ord_0"})
    c.subscribe("trade", symbol=BTC)  # room again
    commit(r, BTC, 1, 0, trades=[trade(BTC, 1)])
    assert c.recv()["event"] == "trade"


def test_orderbook_snapshot_then_gap_free_updates_per_client(connect, r):
    commit(r, BTC, 10, 0, changes=[level("BUY", 101.2, 3.0, 2), level("SELL", 101.5, 1.0)],
           publish=False)
    a = connect()
    a.subscribe("orderbook", symbol=BTC)
    snap = a.recv()
    assert snap == {"event": "orderbook", "type": "snapshot", "symbol": BTC, "sequence": 10,
                    "bids": [{"price": 101.2, "quantity": 3.0, "orders": 2}],
                    "asks": [{"price": 101.5, "quantity": 1.0, "orders": 1}],
                    "checksum": zlib.crc32(b"101.2:3.0|101.5:1.0")}
    book_a = {}
    apply_book(book_a, snap)
    commit(r, BTC, 11, 10, changes=[level("BUY", 101.3, 0.5)])
    u1 = a.recv()  # received before the next commit is published: its own update
    assert (u1["type"], u1["sequence"], u1["prevSequence"]) == ("update", 11, 10)
    commit(r, BTC, 12, 11)  # nothing changed in the book: no message (alone or merged)
    commit(r, BTC, 14, 12, changes=[level("BUY", 101.2, 0, 0)])
    u2 = a.recv()
    assert (u2["type"], u2["sequence"], u2["prevSequence"]) == ("update", 14, 11)
    assert u2["changes"] == [{"side": "BUY", "price": 101.2, "quantity": 0, "orders": 0}]
    apply_book(book_a, u1)
    apply_book(book_a, u2)

    b = connect()  # a later subscriber: its own chain from its own snapshot
    b.subscribe("orderbook", symbol=BTC)
    snap_b = b.recv()
    assert snap_b["sequence"] == 14
    book_b = {}
    apply_book(book_b, snap_b)
    commit(r, BTC, 15, 14)
    commit(r, BTC, 16, 15, changes=[level("SELL", 101.5, 2.0, 2)])
    for c, book in ((a, book_a), (b, book_b)):
        u = c.recv()
        assert (u["sequence"], u["prevSequence"]) == (16, 14)
        apply_book(book, u)
    seq, expected = store_book(r, BTC)
    assert seq == 16 and book_a == expected == book_b

    # A hole in the commit chain (a lost message): a fresh snapshot, then on as usual.
    commit(r, BTC, 17, 16, changes=[level("BUY", 99.0, 1.0)], publish=False)
    commit(r, BTC, 18, 17, changes=[level("BUY", 98.0, 1.0)])
    for c, book in ((a, book_a), (b, book_b)):
        s = c.recv()
        assert (s["type"], s["sequence"]) == ("snapshot", 18)
        apply_book(book, s)
    commit(r, BTC, 19, 18, changes=[level("BUY", 97.0, 1.0)])
    for c, book in ((a, book_a), (b, book_b)):
        u = c.recv()
        assert (u["type"], u["sequence"], u["prevSequence"]) == ("update", 19, 18)
        apply_book(book, u)
        assert book == store_book(r, BTC)[1]

    # Commits published together (one hub window) may come as one update: each changed
    # level with its last total, the sequence of the last commit that changed a level.
    # (tests/unit/test_ws_batch.py checks the merge itself.)
    commit(r, BTC, 20, 19, changes=[level("BUY", 97.0, 2.0)])
    commit(r, BTC, 21, 20, changes=[level("BUY", 97.0, 3.0), level("SELL", 102.0, 1.0)])
    commit(r, BTC, 22, 21)
    for c, book in ((a, book_a), (b, book_b)):
        last = 19
        while last != 21:
            u = c.recv()
            assert (u["type"], u["prevSequence"]) == ("update", last)
            apply_book(book, u)
            last = u["sequence"]
        assert book == store_book(r, BTC)[1]

    # Subscribing again gives a new snapshot; other symbols never leak in.
    commit(r, ETH, 3, 0, changes=[level("BUY", 10.0, 1.0)])
    a.subscribe("orderbook", symbol=BTC)
    assert a.recv()["type"] == "snapshot"
    a.nothing_pending()


def test_every_trade_once_in_order(connect, r):
    c = connect()
    c.subscribe("trade", symbol=ETH)
    seq, messages = 0, []
    for n in range(1, 41):
        batch = [trade(ETH, seq + i + 1, price=10.0 + i) for i in range(n % 3)]
        seq += len(batch)
        messages.append(commit(r, ETH, n, n - 1, trades=batch))
    # A message delivered twice (redelivery) must not double anything.
    r.spublish(keys.events_channel(ETH), orjson.dumps(messages[-1]))
    # Trades whose message was lost are backfilled from the trades stream.
    commit(r, ETH, 41, 40, trades=[trade(ETH, seq + 1), trade(ETH, seq + 2)], publish=False)
    commit(r, ETH, 42, 41, trades=[trade(ETH, seq + 3)])
    seq += 3
    got = [c.recv() for _ in range(seq)]
    assert [t["sequence"] for t in got] == list(range(1, seq + 1))
    assert all(t["event"] == "trade" and t["symbol"] == ETH for t in got)
    assert got[-1] == {"event": "trade", **trade(ETH, seq) | {"timestamp": got[-1]["timestamp"]}}
    c.nothing_pending()


def test_order_status_by_symbol_by_id_and_auth(connect, r):
    anyone, one, alice = connect(), connect(), connect()
    anyone.subscribe("order_status", symbol=BTC)
    one.subscribe("order_status", orderId="ord_b1")
    assert alice.call({"op": "auth", "apiKey": "key-alice"}) == {
        "event": "authenticated", "accountId": "alice"}
    alice.subscribe("order_status", symbol=BTC)

    accepted(r, BTC, [order("ord_a1", "alice", status="PENDING")])
    accepted(r, BTC, [order("ord_b1", "bob", status="PENDING")])
    accepted(r, ETH, [order("ord_e1", "alice", symbol=ETH, status="PENDING")])
    commit(r, BTC, 1, 0, orders=[order("ord_a1", "alice", status="FILLED"),
                                 order("ord_b1", "bob", status="PARTIAL")])

    def statuses(c, n):
        out = [c.recv() for _ in range(n)]
        assert all(m["event"] == "order_status" for m in out)
        c.nothing_pending()
        return [(m["id"], m["status"]) for m in out]

    assert statuses(anyone, 4) == [("ord_a1", "PENDING"), ("ord_b1", "PENDING"),
                                   ("ord_a1", "FILLED"), ("ord_b1", "PARTIAL")]
    assert statuses(one, 2) == [("ord_b1", "PENDING"), ("ord_b1", "PARTIAL")]
    assert statuses(alice, 2) == [("ord_a1", "PENDING"), ("ord_a1", "FILLED")]


def test_order_status_needs_auth_when_required(web_auth, r):
    c = Client(web_auth)
    try:
        assert c.call({"op": "subscribe", "channel": "order_status", "symbol": BTC})["code"] == \
            "AUTH_FAILED"
        c.subscribe("trade", symbol=BTC)  # market data stays public
        assert c.call({"op": "auth", "apiKey": "key-bob"})["accountId"] == "bob"
        c.subscribe("order_status", symbol=BTC)
        accepted(r, BTC, [order("ord_a1", "alice", status="PENDING"),
                          order("ord_b1", "bob", status="PENDING")])
        got = c.recv()
        assert (got["event"], got["id"], got["accountId"]) == ("order_status", "ord_b1", "bob")
        c.nothing_pending()
    finally:
        c.close()


def test_slow_client_is_cut_and_fast_client_keeps_up(connect, r):
    # The slow client reads nothing, through a tiny receive window.
    slow = connect(sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    fast = connect()
    for c in (slow, fast):
        c.subscribe("orderbook", symbol=BTC)
        assert c.recv()["type"] == "snapshot"
    # Book updates of one hub window are merged; trades are not: they make the volume.
    slow.subscribe("trade", symbol=BTC)
    wide = [level("BUY", 50.0 + i / 100, 1.0 + i) for i in range(20)]  # ~1.3 KB frames
    n = 3000
    received = []
    stop_reading = threading.Event()

    def read_fast():
        while (received or [0])[-1] < n and not stop_reading.is_set():
            m = fast.recv()
            assert m["prevSequence"] == (received or [0])[-1]  # the chain holds
            received.append(m["sequence"])

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    for seq in range(1, n + 1):
        commit(r, BTC, seq, seq - 1, changes=[dict(lv, quantity=lv["quantity"] + seq)
                                               for lv in wide],
               trades=[trade(BTC, 2 * seq - 1), trade(BTC, 2 * seq)], checksum=False)
    reader.join(30)
    stop_reading.set()
    # The fast client got every update, chained, while the slow one was cut (below);
    # how fast it got them is make bench-ws's business.
    assert received[-1] == n and received == sorted(set(received))  # several per update

    # The slow one now reads what was already on its way, then the close with a reason.
    slow.ws.settimeout(10)
    while True:
        opcode, data = slow.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert int.from_bytes(data[:2], "big") == 1008
    assert data[2:] == b"slow consumer"


def test_hub_wait_for(redis_server, r):
    hub = EventHub(redis_server.url, [BTC]).start()
    try:
        assert hub.wait_ready(5)
        assert hub.wait_for(BTC, 5, 0.2, lambda: True) is True
        assert hub.wait_for(BTC, 5, 0.3, lambda: False) is False  # nothing came: timed out

        def later():
            time.sleep(0.2)
            commit(r, BTC, 4, 0)
            commit(r, BTC, 6, 4)

        threading.Thread(target=later).start()
        assert hub.wait_for(BTC, 5, 30, lambda: False) is True  # released by commit 6
        assert hub.last_sequence(BTC) == 6
        assert hub.wait_for(BTC, 6, 0, lambda: False) is True  # already seen
    finally:
        hub.stop()


def test_redis_restart_resyncs_then_shutdown_closes_1001(tmp_path):
    """The hub reconnects after Redis comes back: books get a fresh snapshot, trades
    committed meanwhile are backfilled from the stream; SIGTERM closes sockets with 1001."""
    server = RedisServer(tmp_path / "redis").start()
    proc = None
    try:
        r = server.client()
        port = free_port()
        proc = start_gunicorn(server.url, port, tmp_path / "gunicorn.log", WEB_CONCURRENCY="1",
                              GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
        c = Client(f"ws://127.0.0.1:{port}/ws")
        c.subscribe("orderbook", symbol=BTC)
        assert c.recv()["sequence"] == 0
        c.subscribe("trade", symbol=BTC)
        commit(r, BTC, 1, 0, changes=[level("BUY", 100.0, 1.0)], trades=[trade(BTC, 1)])
        assert [c.recv()["event"] for _ in range(2)] == ["orderbook", "trade"]

        server.kill()
        server.process = None
        server.start()  # same port, empty: state written while the hub was away
        r = server.client()
        commit(r, BTC, 5, 1, changes=[level("SELL", 101.0, 2.0)],
               trades=[trade(BTC, 2), trade(BTC, 3)], publish=False)
        got = [c.recv() for _ in range(3)]
        snap = got[0]
        assert (snap["type"], snap["sequence"]) == ("snapshot", 5)
        assert snap["asks"] == [{"price": 101.0, "quantity": 2.0, "orders": 1}]
        assert [t["sequence"] for t in got[1:]] == [2, 3]
        commit(r, BTC, 6, 5, changes=[level("SELL", 101.0, 0, 0)], trades=[trade(BTC, 4)])
        u, t = c.recv(), c.recv()
        assert (u["sequence"], u["prevSequence"], t["sequence"]) == (6, 5, 4)

        proc.terminate()
        c.ws.settimeout(10)
        opcode, data = c.ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 1001
        assert proc.wait(10) == 0
        c.close()
    finally:
        stop(proc)
        server.stop()


def test_permessage_deflate_declined(web):
    """Frames are built once and shared by every client: no per-client compression."""
    port = int(web.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert b" 101 " in head and b"extensions" not in head.lower()
        s.sendall(bytes((0x81, 0x80 | 13)) + b"\0\0\0\0" + b'{"op":"ping"}')
        while len(rest) < 18:
            rest += s.recv(4096)
        assert rest[:18] == b'\x81\x10{"event":"pong"}'


def test_with_real_worker_books_rebuild_to_rest_and_trades_complete(tmp_path):
    """Real worker, orders through REST from several threads while clients subscribe at
    different moments: each client's snapshot + updates equals GET /api/orderbook at the
    end, prevSequence chains, and every trade arrives once, in order."""
    import random

    from tests.support import start_worker, wait_until

    server = RedisServer(tmp_path / "redis").start()
    web_proc = worker = None
    clients = []
    try:
        r = server.client()
        port = free_port()
        worker = start_worker(server.url, tmp_path / "worker.log")
        wait_until(lambda: all(r.exists(keys.heartbeat(s)) for s in (BTC, ETH)), timeout=60,
                   what="worker heartbeats")
        web_proc = start_gunicorn(server.url, port, tmp_path / "gunicorn.log",
                                  GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
        url = f"ws://127.0.0.1:{port}/ws"

        def http_json(method, path, body=None):
            return support_http_json(port, method, path, body)

        class Follower:
            def __init__(self):
                self.c = Client(url)
                # Trades may arrive before the second subscription's ack: run() reads
                # everything, acks included, in the order the server sent it.
                self.c.send({"op": "subscribe", "channel": "trade", "symbol": BTC})
                self.c.send({"op": "subscribe", "channel": "orderbook", "symbol": BTC})
                self.book, self.seq, self.trades, self.breaks = {}, None, [], 0
                self.checked, self.bad_checksums = 0, []
                self.acks, self.subscribed = 0, threading.Event()
                self.thread = threading.Thread(target=self.run, daemon=True)
                self.thread.start()
                assert self.subscribed.wait(10), "no subscribe acks"
                # Trades up to here may predate the subscription; every later one must come.
                self.start_trade = int(r.get(keys.trade_seq(BTC)) or 0)

            def run(self):
                while True:
                    try:
                        m = self.c.recv()
                    except Exception:
                        return
                    if m["event"] == "subscribed":
                        self.acks += 1
                        if self.acks == 2:
                            self.subscribed.set()
                    elif m["event"] == "orderbook":
                        if m["type"] == "update" and m["prevSequence"] != self.seq:
                            self.breaks += 1
                        try:
                            apply_book(self.book, m)  # checks the frame's checksum
                            self.checked += 1
                        except AssertionError:
                            self.bad_checksums.append(m)
                        self.seq = m["sequence"]
                    elif m["event"] == "trade":
                        self.trades.append(m["sequence"])

        def flow(seed, n):
            rnd = random.Random(seed)
            for _ in range(n):
                side = rnd.choice(("BUY", "SELL"))
                price = 100 + rnd.randint(-20, 20) / 100 + (0.05 if side == "BUY" else -0.05)
                status, order_ = http_json("POST", "/api/orders", {
                    "symbol": BTC, "side": side, "price": f"{price:.2f}",
                    "quantity": f"{rnd.randint(1, 20) / 10:.3f}"})
                assert status == 202, order_
                if rnd.random() < 0.15:
                    http_json("DELETE", f"/api/orders/{order_['id']}")

        clients.append(Follower())
        senders = [threading.Thread(target=flow, args=(k, 150)) for k in range(4)]
        for s in senders:
            s.start()
        time.sleep(0.3)
        clients.append(Follower())  # joins mid-stream
        for s in senders:
            s.join()
        wait_until(lambda: int(r.get(keys.applied(BTC)) or 0) == int(r.get(keys.seq(BTC)) or 0),
                   timeout=30, what="matcher drained")
        status, book = http_json("GET", f"/api/orderbook?symbol={BTC}&levels=1000")
        last_trade = int(r.get(keys.trade_seq(BTC)) or 0)
        assert last_trade > 0
        expected = {}
        apply_book(expected, {"type": "snapshot", "bids": book["bids"], "asks": book["asks"],
                              "checksum": checksum_of_levels(book["bids"], book["asks"])})

        def caught_up(f):
            # Commits that change no level send no update, so the client's sequence may
            # stop short of the REST book's while the book itself is the same.
            return (f.seq is not None and f.seq <= book["sequence"] and f.book == expected
                    and (f.trades or [f.start_trade])[-1] == last_trade)

        for f in clients:
            try:
                wait_until(lambda f=f: caught_up(f), timeout=15, what="client caught up")
            except TimeoutError:
                raise AssertionError(
                    f"seq {f.seq} vs {book['sequence']}, last trades {f.trades[-3:]} vs "
                    f"{last_trade}, {len(f.trades)} trades, breaks {f.breaks}") from None
            assert f.breaks == 0
            assert f.bad_checksums == [] and f.checked > 10
            assert f.book == expected
            assert f.trades == sorted(set(f.trades))  # once each, in order
        assert clients[0].trades == list(range(1, last_trade + 1))
    finally:
        for f in clients:
            f.c.close()
        stop(web_proc)
        stop(worker)
        server.stop()
