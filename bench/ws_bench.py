"""WebSocket fan-out bench: ``python -m bench.ws_bench [--clients 1000 --rate 500 --seconds 15]``.

Starts its own redis-server (free port, temp dir), gunicorn (gunicorn.conf.py) and the
matching worker, all on 127.0.0.1. N clients (raw sockets, a few client processes with
a selector loop each) subscribe to trade + orderbook on BTC-USD and ETH-USD; then
crossing limit orders flow at ``--rate`` per second through POST /api/orders for
``--seconds``. ``--synthetic`` skips REST and the worker and publishes commit messages
(book keys, trades stream, cursor and PUBLISH in one MULTI/EXEC) at that rate instead.

Figures: events/s delivered (all clients), delivery latency p50/p99 (trade timestamp,
i.e. the commit, to client receipt; with REST also POST-accepted to receipt of the
trade it made, on a sample), missed trades, doubled trades, orderbook chain breaks
(prevSequence not the last sequence held), dropped clients. The last line printed is
one JSON object with those figures.

``--storm``: the clients connect and subscribe to ``trade`` at the same moment (a
deploy's reconnect storm, localrun/ws_crowd.py), then the order flow runs; figures: acks,
time to the last ack, clients that got every trade exactly once in order.
``--idle N``: N clients subscribe and stay idle; figures: web RSS per connection and
the round trip of a ``ping`` frame on one more connection while they are held.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import random
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

import orjson

from bench.measure import cpu_seconds, percentile, process_tree, rss_mb
from bench.ws_place import server_frames
from localrun import processes
from localrun.synthetic import stage_commit
from store import keys

SYMBOLS = ("BTC-USD", "ETH-USD")
TICK, LOT = {"BTC-USD": 100, "ETH-USD": 100}, {"BTC-USD": 1000, "ETH-USD": 100}


# ---------------------------------------------------------------- client processes


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (mask key 0: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class _Conn:
    __slots__ = ("sock", "buf", "closed", "close_code", "trade_last", "ob_last",
                 "trades", "snapshots", "updates", "sample")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.closed = False
        self.close_code = None
        self.trade_last: dict = {}
        self.ob_last: dict = {}
        self.trades = 0
        self.snapshots = 0
        self.updates = 0
        self.sample = None


def _connect(port: int, subscribe: bool = True) -> _Conn:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("handshake: connection closed")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(f"handshake refused: {head[:80]!r}")
    c = _Conn(s)
    c.buf += rest
    for sym in SYMBOLS if subscribe else ():
        for channel in ("trade", "orderbook"):
            s.sendall(_frame(orjson.dumps({"op": "subscribe", "channel": channel, "symbol": sym})))
    s.setblocking(False)
    return c


def _client_proc(port: int, n: int, sample: bool, cmd, out) -> None:
    conns, errors = [], 0
    for i in range(n):
        try:
            conns.append(_connect(port))
        except OSError:
            errors += 1
        if i % 50 == 49:
            time.sleep(0.02)
    if sample and conns:
        conns[0].sample = array("q")  # (takerOrderId hash, receipt ms) pairs, flattened
    lat = array("i")  # trade timestamp -> receipt, ms
    counts = {"events": 0, "errors": 0}
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    cmd_fd = cmd.fileno()
    sel.register(cmd_fd, selectors.EVENT_READ, None)
    out.send(("ready", len(conns), errors))
    measuring = False
    window_events = 0
    rbuf = bytearray(262144)
    rview = memoryview(rbuf)
    running = True
    while running:
        # Let readiness gather for a moment: the server writes the sockets one after the
        # other, and one select per socket would cost more than the frames themselves.
        # Receipt times may read up to this much late; never early.
        time.sleep(0.002)
        for key, _ in sel.select(1.0):
            c = key.data
            if c is None:
                msg = cmd.recv()
                if msg == "go":
                    measuring, window_events = True, 0
                elif msg == "count":
                    out.send(("count", counts["events"]))
                elif msg == "window":
                    out.send(("window", window_events))
                    measuring = False
                elif msg == "stop":
                    running = False
                continue
            try:
                # Into one preallocated buffer: recv(256 KiB) allocated (and page-faulted)
                # a fresh 256 KiB object per call, a fifth of this loop's CPU.
                got = c.sock.recv_into(rbuf)
            except BlockingIOError:
                continue
            except OSError:
                got = 0
            if not got:
                c.closed = True
                sel.unregister(c.sock)
                continue
            now = int(time.time() * 1000)
            buf = c.buf
            buf += rview[:got]
            frames, pos = server_frames(buf)
            for opcode, payload in frames:
                if opcode == 1:
                    m = orjson.loads(payload)
                    ev = m.get("event")
                    counts["events"] += 1
                    if measuring:
                        window_events += 1
                    if ev == "trade":
                        sym, seq = m["symbol"], m["sequence"]
                        last = c.trade_last.get(sym)
                        if last is not None and seq <= last:
                            counts["doubled"] = counts.get("doubled", 0) + 1
                            continue
                        c.trade_last[sym] = seq
                        c.trades += 1
                        lat.append(now - m["timestamp"])
                        if c.sample is not None:
                            c.sample.extend((hash(m["takerOrderId"]), now))
                    elif ev == "orderbook":
                        sym = m["symbol"]
                        if m["type"] == "snapshot":
                            c.snapshots += 1
                        else:
                            c.updates += 1
                            if m["prevSequence"] != c.ob_last.get(sym):
                                counts["chain_breaks"] = counts.get("chain_breaks", 0) + 1
                        c.ob_last[sym] = m["sequence"]
                    elif ev == "error":
                        counts["errors"] += 1
                elif opcode == 8:
                    c.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
                elif opcode == 9:
                    try:
                        c.sock.send(_frame(payload, 10))
                    except OSError:
                        pass
            del buf[:pos]
    per_client = [
        {"closed": c.closed or c.close_code is not None, "code": c.close_code,
         "trade_last": c.trade_last, "trades": c.trades, "snapshots": c.snapshots,
         "updates": c.updates}
        for c in conns
    ]
    sample = []
    for c in conns:
        if c.sample is not None:
            sample = list(c.sample)
    out.send(("done", counts, per_client, lat.tobytes(), sample))
    for c in conns:
        c.sock.close()


# ---------------------------------------------------------------- order flow


class _Http:
    """A bare keep-alive HTTP/1.1 client for the order flow: it shares the two cores
    with the server, and http.client cost about three times as much CPU per POST."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body))
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            self.buf = rest
            self._fill()
            rest = self.buf
        self.buf = rest[length:]
        return int(head.split(b" ", 2)[1]), rest[:length]

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def _post_flow(port: int, rate: float, seconds: float, sent: dict, stop_at: list) -> None:
    """Crossing limit orders at ``rate``/s from a few keep-alive connections."""
    # Enough senders that a slow POST (the node is busy fanning out) does not cut the
    # offered rate: ~60 ms per POST still gives ``rate``.
    threads_n = max(2, min(32, int(rate // 16)))
    t0 = time.monotonic() + 0.05
    lock = threading.Lock()
    counter = [0]
    total = int(rate * seconds)

    def run(seed):
        rnd = random.Random(seed)
        conn = _Http(port)
        while True:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= total:
                break
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sym = SYMBOLS[i % 2]
            side = rnd.choice(("BUY", "SELL"))
            # Around 100 with a spread of crossing prices: about half the orders trade.
            offset = rnd.randint(-30, 30) + (10 if side == "BUY" else -10)
            body = orjson.dumps({"symbol": sym, "side": side, "price": f"{100 + offset / 100:.2f}",
                                 "quantity": "0.10"})
            t_send = int(time.time() * 1000)
            try:
                status, data = conn.post("/api/orders", body)
            except OSError:
                conn.close()
                conn = _Http(port)
                sent["errors"] = sent.get("errors", 0) + 1
                continue
            if status in (200, 201, 202):
                sent[hash(orjson.loads(data)["id"])] = t_send
            else:
                sent["errors"] = sent.get("errors", 0) + 1
        conn.close()

    workers = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop_at.append(time.monotonic())


def _synthetic_flow(r, rate: float, seconds: float, stop_at: list) -> None:
    """Commit messages as the worker publishes them, without REST and worker."""
    rnd = random.Random(7)
    state = {s: {"seq": int(r.get(keys.applied(s)) or 0),
                 "tseq": int(r.get(keys.trade_seq(s)) or 0)} for s in SYMBOLS}
    t0 = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sym = SYMBOLS[i % 2]
        st = state[sym]
        now = int(time.time() * 1000)
        prev, st["seq"] = st["seq"], st["seq"] + 1
        changes, trades = [], []
        for _ in range(rnd.randint(1, 2)):
            side = rnd.choice(("BUY", "SELL"))
            ticks = 10000 + rnd.randint(-30, 30) + (-40 if side == "BUY" else 40)
            lots = rnd.randint(0, 5) * (LOT[sym] // 10)
            changes.append({"side": side, "price": ticks / TICK[sym],
                            "quantity": lots / LOT[sym], "orders": 1 if lots else 0})
        if rnd.random() < 0.5:
            st["tseq"] += 1
            trades.append({"id": f"trd_{sym}_{st['tseq']}", "symbol": sym, "buyOrderId": "ob",
                           "sellOrderId": "os", "makerOrderId": "os", "takerOrderId": f"o{i}",
                           "takerSide": "BUY", "price": 100.0, "quantity": 0.1,
                           "sequence": st["tseq"], "timestamp": now})
        msg = {"type": "commit", "symbol": sym, "sequence": st["seq"], "prevSequence": prev,
               "timestamp": now, "changes": changes, "trades": trades, "orders": []}
        with r.pipeline(transaction=True) as pipe:
            stage_commit(pipe, msg, TICK[sym], LOT[sym])
            pipe.spublish(keys.events_channel(sym), orjson.dumps(msg))
            pipe.execute()
    stop_at.append(time.monotonic())


# ---------------------------------------------------------------- driver


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=500.0, help="orders (or commits) per second")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--synthetic", action="store_true", help="publish commits; no REST/worker")
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--worker-class", default=None, help="gunicorn worker class override")
    p.add_argument("--web-concurrency", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="gthread threads per worker")
    p.add_argument("--drain", type=float, default=10.0, help="max seconds to wait for delivery")
    p.add_argument("--storm", action="store_true", help="all clients connect at once")
    p.add_argument("--idle", type=int, default=0, metavar="N",
                   help="hold N idle subscribed clients: memory per connection, ping RTT")
    p.add_argument("--place", action="store_true",
                   help="order entry over the socket: accepted orders/s (bench/ws_place.py)")
    p.add_argument("--window", type=int, default=32, help="--place: frames in flight per socket")
    p.add_argument("--profile", action="store_true", help="--place: py-spy on the web")
    args = p.parse_args(argv)
    if args.place:
        from bench import ws_place

        if "--clients" not in (argv or sys.argv):
            args.clients = 32
        return ws_place.run(args)
    if args.storm or args.idle:
        return _storm_or_idle(args)
    if args.clients < 1 or args.clients > 20000 or args.seconds > 600 or args.rate > 20000:
        p.error("clients 1..20000, seconds <= 600, rate <= 20000")

    tmp = Path(tempfile.mkdtemp(prefix="ws_bench_"))
    redis_srv = processes.RedisServer(tmp / "redis").start()
    r = redis_srv.client()
    port = processes.free_port()
    env = {"WEB_CONCURRENCY": str(args.web_concurrency), "LOG_LEVEL": "WARNING",
           "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port}"}  # loopback only
    if args.worker_class:
        env["GUNICORN_WORKER_CLASS"] = args.worker_class
    threads = args.threads or (args.clients // args.web_concurrency + 200)
    env["GUNICORN_THREADS"] = str(threads)
    web = worker = None
    procs, pipes = [], []
    try:
        web = processes.start_gunicorn(redis_srv.url, port, tmp / "gunicorn.log", **env)
        if not args.synthetic:
            worker = processes.start_worker(redis_srv.url, tmp / "worker.log")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

            def healthy():
                conn.request("GET", "/api/health")
                resp = conn.getresponse()
                resp.read()
                return resp.status == 200

            processes.wait_until(healthy, timeout=60, interval=0.3,
                                 what="matcher ready (GET /api/health)")
            conn.close()
        rss_before = rss_mb(web.pid)
        ctx = mp.get_context("fork")
        per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
               for i in range(args.procs)]
        t_conn = time.monotonic()
        for i, n in enumerate(per):
            cmd_parent, cmd_child = ctx.Pipe()
            out_parent, out_child = ctx.Pipe()
            proc = ctx.Process(target=_client_proc, args=(port, n, i == 0, cmd_child, out_child),
                               daemon=True)
            proc.start()
            procs.append(proc)
            pipes.append((cmd_parent, out_parent))
        connected = connect_errors = 0
        for _, out in pipes:
            if not out.poll(120):
                raise TimeoutError("client process did not connect in 120 s")
            _, ok, errs = out.recv()
            connected += ok
            connect_errors += errs
        connect_s = time.monotonic() - t_conn
        time.sleep(1.0)  # subscriptions and snapshots settle
        rss_idle = rss_mb(web.pid)
        print(f"connected {connected}/{args.clients} clients in {connect_s:.1f}s "
              f"(errors {connect_errors}); server RSS {rss_before} -> {rss_idle} MB", flush=True)

        baseline = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        web_pids, client_pids = process_tree(web.pid), [proc.pid for proc in procs]
        cpu0 = (cpu_seconds(web_pids), cpu_seconds(client_pids))
        for cmd, _ in pipes:
            cmd.send("go")
        sent: dict = {}
        stop_at: list = []
        t_flow = time.monotonic()
        if args.synthetic:
            flow = threading.Thread(target=_synthetic_flow,
                                    args=(redis_srv.client(), args.rate, args.seconds, stop_at))
        else:
            flow = threading.Thread(target=_post_flow,
                                    args=(port, args.rate, args.seconds, sent, stop_at))
        flow.start()
        flow.join()
        flow_s = stop_at[0] - t_flow
        # Wait for delivery to finish: every surviving client at the last trade, or drain.
        final = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        if not args.synthetic:
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline:  # the matcher may lag the accepts
                applied = {s: int(r.get(keys.applied(s)) or 0) for s in SYMBOLS}
                if all(applied[s] >= int(r.get(keys.seq(s)) or 0) for s in SYMBOLS):
                    break
                time.sleep(0.1)
            final = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        # Delivery is over when no client got anything for a second (or --drain passed).
        deadline, previous = time.monotonic() + args.drain, -1
        while time.monotonic() < deadline:
            for cmd, _ in pipes:
                cmd.send("count")
            total = sum(out.recv()[1] for _, out in pipes)
            if total == previous:
                break
            previous = total
            time.sleep(1.0)
        window_events = 0
        for cmd, _ in pipes:
            cmd.send("window")
        for _, out in pipes:
            window_events += out.recv()[1]
        window_s = time.monotonic() - t_flow
        rss_load = rss_mb(web.pid)
        cpu = (cpu_seconds(web_pids) - cpu0[0], cpu_seconds(client_pids) - cpu0[1])
        for cmd, _ in pipes:
            cmd.send("stop")
        counts, clients, lat, sample = {}, [], array("i"), []
        for _, out in pipes:
            _, c, per_client, lat_bytes, smp = out.recv()
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
            clients += per_client
            part = array("i")
            part.frombytes(lat_bytes)
            lat += part
            sample += smp
        dropped = sum(1 for c in clients if c["closed"])
        codes = {}
        for c in clients:
            if c["closed"]:
                codes[str(c["code"])] = codes.get(str(c["code"]), 0) + 1
        expected = sum(final[s] - baseline[s] for s in SYMBOLS)
        missed = 0
        for c in clients:
            if not c["closed"]:
                missed += max(0, expected - c["trades"])
        resnapshots = sum(max(0, c["snapshots"] - len(SYMBOLS)) for c in clients)
        lat_sorted = sorted(lat)
        pairs = zip(sample[::2], sample[1::2], strict=True)
        accept = sorted(rx - sent[h] for h, rx in pairs if h in sent)
        result = {
            "clients": connected,
            "worker_class": args.worker_class or "gevent",
            "synthetic": args.synthetic,
            "orders_per_s": round(int(args.rate * args.seconds) / flow_s, 1),
            "trades": expected,
            "events_per_s": round(window_events / window_s, 1),
            "events": counts.get("events", 0),
            "p50_ms": percentile(lat_sorted, 50),
            "p99_ms": percentile(lat_sorted, 99),
            "max_ms": lat_sorted[-1] if lat_sorted else None,
            "accept_p50_ms": percentile(accept, 50),
            "accept_p99_ms": percentile(accept, 99),
            "missed": missed,
            "doubled": counts.get("doubled", 0),
            "chain_breaks": counts.get("chain_breaks", 0),
            "resnapshots": resnapshots,
            "dropped_clients": dropped,
            "close_codes": codes,
            "errors": counts.get("errors", 0) + sent.get("errors", 0),
            "server_rss_mb": {"before": rss_before, "idle": rss_idle, "load": rss_load},
            "cpu_s": {"web": round(cpu[0], 1), "clients": round(cpu[1], 1),
                      "window": round(window_s, 1)},
        }
        print(f"clients {connected}, {result['orders_per_s']} orders/s, {expected} trades, "
              f"{result['events_per_s']} events/s delivered; trade latency p50 "
              f"{result['p50_ms']} ms p99 {result['p99_ms']} ms (accept->receipt p50 "
              f"{result['accept_p50_ms']} p99 {result['accept_p99_ms']}); missed {missed}, "
              f"doubled {result['doubled']}, chain breaks {result['chain_breaks']}, "
              f"dropped clients {dropped} {codes}; cpu s web {cpu[0]:.1f} clients {cpu[1]:.1f} "
              f"in {window_s:.1f}s", flush=True)
        print(orjson.dumps(result).decode(), flush=True)
        return result
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        processes.stop(worker)
        processes.stop(web)
        r.close()
        redis_srv.stop()


def _storm_or_idle(args) -> dict:
    """``--storm`` / ``--idle N`` on a node of the tests' kind (redis-server, worker,
    gunicorn with WEB_CONCURRENCY workers)."""
    import websocket

    from localrun.node import Node
    from localrun.ws_crowd import Storm, raise_fd_limit

    raise_fd_limit()
    clients = args.idle or args.clients
    workdir = Path(tempfile.mkdtemp(prefix="ws_bench_"))
    node = Node(workdir, WEB_CONCURRENCY=str(args.web_concurrency))
    storm = Storm(node.port, clients, max(args.procs, 4), SYMBOLS)
    try:
        rss_before = rss_mb(node.web.pid)
        acked, connect_s = storm.connect(timeout=600)
        time.sleep(2)
        rss_held = rss_mb(node.web.pid)
        result = {"mode": "idle" if args.idle else "storm", "clients": clients,
                  "acked": acked, "to_last_ack_s": round(connect_s, 2),
                  "rss_mb": {"before": rss_before, "held": rss_held},
                  "kib_per_connection": round((rss_held - rss_before) * 1024 / max(1, acked), 1)}
        rate, seconds = (20.0, 2.0) if args.idle else (args.rate, args.seconds)
        if args.idle:
            probe = websocket.create_connection(f"ws://127.0.0.1:{node.port}/ws", timeout=30)
            rtts = []
            for _ in range(50):
                t0 = time.perf_counter()
                probe.send('{"op":"ping"}')
                probe.recv()
                rtts.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.02)
            probe.close()
            rtts.sort()
            result["ping_ms"] = {"p50": round(percentile(rtts, 50), 2),
                                 "p99": round(percentile(rtts, 99), 2)}
        sent, stop_at = {}, []
        _post_flow(node.port, rate, seconds, sent, stop_at)
        r = node.redis.client(decode_responses=True)
        processes.wait_until(
            lambda: all(int(r.get(keys.applied(s)) or 0) == int(r.get(keys.seq(s)) or 0)
                        for s in SYMBOLS), timeout=120, what="the worker to drain")
        final = {s: int(r.get(keys.trade_seq(s)) or 0) for s in SYMBOLS}
        reports = storm.finish(final, timeout=args.drain + 60)
        result.update({
            "orders": sum(k != "errors" for k in sent), "trades": final,
            "complete": sum(all(rep["trades"].get(s, []) == list(range(1, final[s] + 1))
                                for s in SYMBOLS) for rep in reports),
            "closed": sum(rep["close_code"] is not None or rep["failed"] is not None
                          for rep in reports),
            "errors": sum(len(rep["errors"]) for rep in reports) + sent.get("errors", 0),
        })
        print(orjson.dumps(result).decode(), flush=True)
        return result
    finally:
        storm.close()
        node.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
