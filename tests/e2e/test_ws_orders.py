"""Orders and the socket, end to end: real redis-server, gunicorn (gunicorn.conf.py,
auth required) and matching worker; real WebSocket clients.

- Order entry over /ws (api.md §4): ``place``/``cancel`` answered ``ack`` or ``error``
  exactly as REST answers the same body (codes and fields), auth first, a clientOrderId
  replayed or reused as REST does, and WS-placed orders end in the same state and
  journal replay as REST-placed ones.
- ``order_status`` reaches a client in the order things happened: an order's PENDING
  before its OPEN/fills and before any book update or trade that shows it.
- ``order_status`` for reduce, replace, cancel-all and GTD expiry (README "Order
  management").
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from schemas.markets import get_market
from settings import load_settings
from store import keys
from tests.e2e.conftest import POOL_SIZE, market_pool
from tests.e2e.test_ws import Client
from tests.replay import diff_against_replay
from tests.support import (
    RedisServer,
    free_port,
    http_json,
    start_gunicorn,
    start_worker,
    stop,
    wait_until,
)
from tests.support import order as order_body

pytestmark = pytest.mark.slow

API_KEYS = "key-alice:alice,key-bob:bob"
ALICE, BOB = {"X-API-Key": "key-alice"}, {"X-API-Key": "key-bob"}


class Venue:
    def __init__(self, port: int, r, settings):
        self.port, self.r, self.settings = port, r, settings
        self.url = f"ws://127.0.0.1:{port}/ws"
        self._fresh = itertools.count()

    def symbol(self) -> str:
        n = next(self._fresh)
        assert n < POOL_SIZE, "market pool exhausted"
        return f"T{n:02d}-USD"

    def rest(self, method, path, body=None, headers=ALICE):
        return http_json(self.port, method, path, body, headers=headers)

    def client(self, key: str | None = "key-alice") -> Client:
        c = Client(self.url)
        if key is not None:
            assert c.call({"op": "auth", "apiKey": key})["event"] == "authenticated"
        return c

    def accepted(self, symbol: str) -> int:
        return int(self.r.get(keys.seq(symbol)) or 0)

    def drained(self, symbol: str) -> None:
        wait_until(lambda: int(self.r.get(keys.applied(symbol)) or 0) == self.accepted(symbol),
                   timeout=30, what=f"{symbol} drained")


@pytest.fixture(scope="module")
def venue(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ws_orders")
    server = RedisServer(tmp / "redis").start()
    markets = json.dumps(market_pool())
    settings = load_settings({"REDIS_URL": server.url, "MARKETS": markets})
    worker = web = None
    r = server.client(decode_responses=True)
    try:
        worker = start_worker(server.url, tmp / "worker.log", MARKETS=markets)
        wait_until(lambda: all(r.exists(keys.heartbeat(s)) for s in settings.symbols),
                   timeout=60, interval=0.1, what="worker heartbeats")
        port = free_port()
        web = start_gunicorn(server.url, port, tmp / "gunicorn.log", MARKETS=markets,
                             API_KEYS=API_KEYS, AUTH_REQUIRED="true", RATE_LIMITS="off",
                             WEB_CONCURRENCY="2", GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
        yield Venue(port, r, settings)
    finally:
        stop(web)
        stop(worker)
        r.close()
        server.stop()


def place(c: Client, req_id: str, body: dict) -> dict:
    return c.call({"op": "place", "reqId": req_id, **body})


def flow_body(symbol, side, qty, price) -> dict:
    """A LIMIT order, or a MARKET one when ``price`` is None."""
    return order_body(symbol, side, qty, price, **({} if price else {"orderType": "MARKET"}))


# ---------------------------------------------------------------- order entry


def test_place_and_cancel_answer_ack_with_the_rest_body(venue):
    s = venue.symbol()
    c = venue.client()
    try:
        ack = place(c, "r1", order_body(s, "BUY", "1.5", "100.25", clientOrderId="c-1"))
        assert (ack["event"], ack["reqId"]) == ("ack", "r1")
        o = ack["order"]
        assert (o["status"], o["symbol"], o["side"], o["price"], o["quantity"],
                o["accountId"], o["clientOrderId"]) == (
            "PENDING", s, "BUY", 100.25, 1.5, "alice", "c-1")
        venue.drained(s)
        status, rest = venue.rest("GET", f"/api/orders/{o['id']}")
        assert status == 200 and rest["status"] == "OPEN" and rest["sequence"] == o["sequence"]

        cancel = c.call({"op": "cancel", "reqId": "r2", "orderId": o["id"]})
        assert (cancel["event"], cancel["reqId"], cancel["order"]["id"]) == ("ack", "r2", o["id"])
        venue.drained(s)
        assert venue.rest("GET", f"/api/orders/{o['id']}")[1]["status"] == "CANCELLED"
        again = c.call({"op": "cancel", "reqId": "r3", "orderId": o["id"]})
        assert (again["event"], again["reqId"], again["code"]) == (
            "error", "r3", "ORDER_NOT_CANCELLABLE")
        unknown = c.call({"op": "cancel", "reqId": "r4", "orderId": "ord_nope"})
        assert (unknown["code"], unknown["reqId"]) == ("ORDER_NOT_FOUND", "r4")
        c.nothing_pending()
    finally:
        c.close()


def test_order_entry_needs_auth_and_stays_in_the_account(venue):
    s = venue.symbol()
    anonymous, bob = venue.client(key=None), venue.client("key-bob")
    try:
        before = venue.accepted(s)
        refused = place(anonymous, "r1", order_body(s, "BUY", "1", "100"))
        assert (refused["event"], refused["reqId"], refused["code"]) == (
            "error", "r1", "AUTH_REQUIRED")
        assert anonymous.call({"op": "cancel", "reqId": "r2", "orderId": "ord_x"})["code"] == \
            "AUTH_REQUIRED"
        assert venue.accepted(s) == before  # nothing journaled
        status, alices = venue.rest("POST", "/api/orders", order_body(s, "SELL", "1", "101"))
        assert status == 202
        theirs = bob.call({"op": "cancel", "reqId": "r3", "orderId": alices["id"]})
        assert theirs["code"] == "ORDER_NOT_FOUND"  # another account's order, as REST says
        assert bob_ack(bob, s)["accountId"] == "bob"
    finally:
        anonymous.close()
        bob.close()


def bob_ack(c: Client, s: str) -> dict:
    ack = place(c, "b1", order_body(s, "BUY", "1", "99"))
    assert ack["event"] == "ack", ack
    return ack["order"]


def test_frames_sent_together_are_answered_in_order_and_journaled_in_order(venue):
    s = venue.symbol()
    c = venue.client()
    try:
        frames = [
            {"op": "place", "reqId": "a", **order_body(s, "BUY", "1", "100")},
            {"op": "place", "reqId": "b", **order_body(s, "BUY", "1", "100.001")},  # bad
            {"op": "cancel", "reqId": "c", "orderId": "ord_unknown"},
            {"op": "place", "reqId": "d", **order_body(s, "SELL", "1", "101")},
            {"op": "ping"},
            {"op": "place", "reqId": "e", **order_body(s, "SELL", "0.5", "100")},  # trades
        ]
        for f in frames:
            c.send(f)
        got = [c.recv() for _ in frames]
        assert [(g["event"], g.get("reqId")) for g in got] == [
            ("ack", "a"), ("error", "b"), ("error", "c"), ("ack", "d"), ("pong", None),
            ("ack", "e")]
        assert (got[1]["code"], got[2]["code"]) == ("VALIDATION_ERROR", "ORDER_NOT_FOUND")
        placed = [got[i]["order"] for i in (0, 3, 5)]
        assert [o["sequence"] for o in placed] == sorted(o["sequence"] for o in placed)
        venue.drained(s)
        first = venue.rest("GET", f"/api/orders/{placed[0]['id']}")[1]
        assert (first["status"], first["filledQuantity"]) == ("PARTIAL", 0.5)
    finally:
        c.close()


BAD_BODIES = [
    {"side": "BUY", "price": "100"},  # no quantity
    {},  # every missing field at once
    {"side": "BUY", "price": "100", "quantity": "-1"},
    {"side": "BUY", "price": "100", "quantity": -1},
    {"side": "BUY", "price": "100.001", "quantity": "1"},  # off the tick
    {"side": "BUY", "price": 0.30000000000000004, "quantity": "1"},
    {"side": "BUY", "price": "100", "quantity": "1", "colour": "red"},  # unknown field
    {"side": "BUY", "price": "100", "quantity": "1", "symbol": "DOGE-USD"},
    {"side": "BUY", "type": "SELL", "price": "100", "quantity": "1"},
    {"side": "BUY", "orderType": "MARKET", "price": "100", "quantity": "1"},
    {"side": "BUY", "price": "100", "quantity": "1", "postOnly": True, "timeInForce": "IOC"},
    {"side": "BUY", "price": "100", "quantity": "1", "clientOrderId": "bad id!"},
    {"side": "BUY", "price": "100", "quantity": "1", "timeInForce": "GTD"},
]


def test_bad_input_is_answered_like_rest_and_changes_nothing(venue):
    s = venue.symbol()
    c = venue.client()
    try:
        before = venue.accepted(s)
        for i, body in enumerate(BAD_BODIES):
            body = {"symbol": s, **body} if "symbol" not in body else body
            status, rest = venue.rest("POST", "/api/orders", body)
            assert status == 400, (body, rest)
            got = place(c, f"bad-{i}", body)
            assert got["event"] == "error" and got["reqId"] == f"bad-{i}", (body, got)
            assert (got["code"], got.get("fields")) == (
                rest["error"]["code"], rest["error"].get("fields")), (body, got, rest)
        for frame, field in [
            ({"op": "place", "side": "BUY", "price": "1", "quantity": "1"}, "reqId"),
            ({"op": "place", "reqId": "x" * 65, "side": "BUY"}, "reqId"),
            ({"op": "place", "reqId": 7, "side": "BUY"}, "reqId"),
            ({"op": "cancel", "reqId": "c1"}, "orderId"),
            ({"op": "cancel", "reqId": "c2", "orderId": "ord_1", "why": 1}, "why"),
        ]:
            got = c.call(frame)
            assert got["event"] == "error" and got["code"] == "VALIDATION_ERROR", (frame, got)
            assert field in got["fields"], (frame, got)
        assert c.call('{"op": "place", "reqId": "n1", "quantity": NaN}')["code"] in (
            "BAD_FRAME", "INVALID_JSON")
        c.nothing_pending()  # the socket stayed open
        assert venue.accepted(s) == before
    finally:
        c.close()


def test_client_order_id_replay_and_reuse_as_rest(venue):
    s = venue.symbol()
    c = venue.client()
    try:
        body = order_body(s, "BUY", "2", "100", clientOrderId="same-1")
        first = place(c, "r1", body)["order"]
        replay = place(c, "r2", body)
        assert (replay["event"], replay["order"]["id"]) == ("ack", first["id"])
        status, rest_replay = venue.rest("POST", "/api/orders", body)
        assert (status, rest_replay["id"]) == (200, first["id"])
        before = venue.accepted(s)
        for changed in ({"price": "101"}, {"quantity": "3"}, {"side": "SELL"}):
            reused = place(c, "r3", {**body, **changed})
            status, rest = venue.rest("POST", "/api/orders", {**body, **changed})
            assert status == 409 and rest["error"]["code"] == "CLIENT_ORDER_ID_REUSED"
            assert (reused["event"], reused["code"], reused["fields"]) == (
                "error", "CLIENT_ORDER_ID_REUSED", rest["error"]["fields"])
        assert venue.accepted(s) == before  # nothing placed
    finally:
        c.close()


FLOW = [  # (side, quantity, price or None: MARKET, cancel it afterwards)
    ("BUY", "1", "100", False), ("BUY", "2", "99.5", True), ("SELL", "0.5", "101", False),
    ("SELL", "1.5", "100", False), ("BUY", "1", None, False), ("SELL", "3", "99", False),
    ("BUY", "0.25", "101", True), ("BUY", "4", "98", False), ("SELL", "1", None, False),
    ("SELL", "2", "102", True), ("BUY", "2.5", "102", False),
]


def _outcome(venue, symbol) -> dict:
    """What a symbol ended as, without ids and clocks."""
    _, orders = venue.rest("GET", f"/api/orders?symbol={symbol}&limit=1000")
    _, book = venue.rest("GET", f"/api/orderbook?symbol={symbol}&levels=1000")
    _, trades = venue.rest("GET", f"/api/trades?symbol={symbol}&limit=1000")
    kept = ("side", "orderType", "price", "quantity", "filledQuantity", "averagePrice",
            "status", "reason", "sequence")
    return {"orders": sorted(tuple(o[k] for k in kept) for o in orders["orders"]),
            "book": (book["bids"], book["asks"]),
            "trades": [(t["price"], t["quantity"], t["takerSide"], t["sequence"])
                       for t in trades["trades"]]}


def test_ws_placed_orders_end_like_rest_placed_ones(venue):
    by_rest, by_ws = venue.symbol(), venue.symbol()
    c = venue.client()
    try:
        for i, (side, qty, price, cancel) in enumerate(FLOW):
            status, o = venue.rest("POST", "/api/orders", flow_body(by_rest, side, qty, price))
            assert status == 202, o
            ack = place(c, f"p{i}", flow_body(by_ws, side, qty, price))
            assert ack["event"] == "ack", ack
            venue.drained(by_rest)
            venue.drained(by_ws)
            if cancel:
                status, _ = venue.rest("DELETE", f"/api/orders/{o['id']}")
                got = c.call({"op": "cancel", "reqId": f"c{i}", "orderId": ack["order"]["id"]})
                # Open: both queue the cancel; filled already: both refuse it.
                assert (status, got["event"], got.get("code")) in (
                    (202, "ack", None), (409, "error", "ORDER_NOT_CANCELLABLE")), (status, got)
        venue.drained(by_rest)
        venue.drained(by_ws)
        rest_outcome, ws_outcome = _outcome(venue, by_rest), _outcome(venue, by_ws)
        assert rest_outcome["trades"] and ws_outcome == rest_outcome
        for symbol in (by_rest, by_ws):
            assert diff_against_replay(venue.r, get_market(venue.settings, symbol)) == []
    finally:
        c.close()


# ---------------------------------------------------------------- order_status order


class Recorder:
    """One socket on order_status, orderbook and trade of a symbol: every frame, in order."""

    def __init__(self, venue, symbol):
        self.c = venue.client()
        for channel in ("order_status", "trade", "orderbook"):  # snapshot: first frame
            self.c.subscribe(channel, symbol=symbol)
        self.frames: list[dict] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                self.frames.append(self.c.recv())
            except Exception:
                return

    def statuses(self, order_id: str) -> list[dict]:
        return [f for f in list(self.frames)
                if f["event"] == "order_status" and f["id"] == order_id]

    def close(self):
        self.c.close()
        self.thread.join(10)


def test_order_status_arrives_in_the_order_it_happened(venue):
    s = venue.symbol()
    rec = Recorder(venue, s)
    placed: list[dict] = []
    lock = threading.Lock()
    try:
        def rest_flow(seed):
            for i in range(60):
                side = "BUY" if (i + seed) % 2 else "SELL"
                price = f"{100 + ((i * 7 + seed) % 5 - 2) / 100:.2f}"
                status, o = venue.rest("POST", "/api/orders", order_body(s, side, "0.5", price))
                assert status == 202, o
                with lock:
                    placed.append(o)

        def ws_flow(seed):
            c = venue.client()
            try:
                for i in range(60):
                    side = "SELL" if (i + seed) % 2 else "BUY"
                    price = f"{100 + ((i * 3 + seed) % 5 - 2) / 100:.2f}"
                    ack = place(c, f"{seed}-{i}", order_body(s, side, "0.5", price))
                    assert ack["event"] == "ack", ack
                    with lock:
                        placed.append(ack["order"])
            finally:
                c.close()

        flows = [threading.Thread(target=rest_flow, args=(k,)) for k in range(2)]
        flows += [threading.Thread(target=ws_flow, args=(k,)) for k in range(2)]
        for t in flows:
            t.start()
        for t in flows:
            t.join()
        assert len(placed) == 240
        venue.drained(s)
        finals = {o["id"]: venue.rest("GET", f"/api/orders/{o['id']}")[1] for o in placed}
        wait_until(lambda: all(
            (got := rec.statuses(oid)) and got[-1]["status"] == final["status"]
            and got[-1]["filledQuantity"] == final["filledQuantity"]
            for oid, final in finals.items()), timeout=30, what="every order's last status")
        frames = list(rec.frames)
        trades_seen = 0
        for o in placed:
            at = [i for i, f in enumerate(frames)
                  if f["event"] == "order_status" and f["id"] == o["id"]]
            first = frames[at[0]]
            assert first["status"] == "PENDING", (o["id"], [frames[i]["status"] for i in at])
            assert all(frames[i]["status"] != "PENDING" for i in at[1:])
            updated = [frames[i]["updatedAt"] for i in at]
            assert updated == sorted(updated)
            # Nothing that already shows the order comes before its PENDING: no book
            # update of a commit at or past its sequence, no trade it took part in.
            for f in frames[:at[0]]:
                if f["event"] == "orderbook" and f["type"] == "update":
                    assert f["sequence"] < o["sequence"], (o["id"], f)
                if f["event"] == "trade":
                    assert o["id"] not in (f["buyOrderId"], f["sellOrderId"]), (o["id"], f)
            trades_seen += sum(1 for f in frames[at[0]:]
                               if f["event"] == "trade" and o["id"] == f["takerOrderId"])
        assert trades_seen > 0  # the flow crossed: the ordering was tested against trades
    finally:
        rec.close()


# ---------------------------------------------------------------- order management events


def test_order_status_for_reduce_replace_cancel_all_and_expiry(venue):
    s = venue.symbol()
    watcher = venue.client()
    watcher.subscribe("order_status", symbol=s)
    try:
        def post(path, body, method="POST"):
            status, got = venue.rest(method, path, body)
            assert status in (200, 202), (path, got)
            return got

        def next_status(order_id, status, timeout=15.0):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                m = watcher.recv()
                if m["event"] == "order_status" and m["id"] == order_id \
                        and m["status"] == status:
                    return m
            raise AssertionError(f"no {status} for {order_id}")

        reduced = post("/api/orders", order_body(s, "BUY", "2", "100"))
        next_status(reduced["id"], "OPEN")
        post(f"/api/orders/{reduced['id']}", {"quantity": "0.5"}, method="PATCH")
        m = next_status(reduced["id"], "OPEN")
        assert (m["quantity"], m["remainingQuantity"]) == (0.5, 0.5)

        old = post("/api/orders", order_body(s, "SELL", "1", "105"))
        next_status(old["id"], "OPEN")
        new = post(f"/api/orders/{old['id']}/replace", {"side": "SELL", "price": "104",
                                                         "quantity": "1"})
        assert new["replacesOrderId"] == old["id"]
        assert next_status(new["id"], "PENDING")["replacesOrderId"] == old["id"]
        cancelled = next_status(old["id"], "CANCELLED")
        assert cancelled["reason"] == "USER_CANCELLED"
        assert next_status(new["id"], "OPEN")["price"] == 104.0

        post(f"/api/orders?symbol={s}", None, method="DELETE")
        left = {reduced["id"], new["id"]}
        while left:  # one cancel-all command: both, in the engine's order
            m = watcher.recv()
            if m["event"] == "order_status" and m["status"] == "CANCELLED":
                assert m["reason"] == "USER_CANCELLED"
                left.discard(m["id"])

        expire_at = int(time.time() * 1000) + 1500
        gtd = post("/api/orders", order_body(s, "BUY", "1", "99", timeInForce="GTD",
                                             expireTime=expire_at))
        next_status(gtd["id"], "OPEN")
        expired = next_status(gtd["id"], "CANCELLED", timeout=30)
        assert expired["reason"] == "EXPIRED"
        venue.drained(s)
        assert diff_against_replay(venue.r, get_market(venue.settings, s)) == []
    finally:
        watcher.close()
