"""Order entry over the WebSocket: ``python -m bench.ws_bench --place [--clients 32
--window 32 --seconds 15]``.

Own redis-server, matching worker and gunicorn (gunicorn.conf.py, its defaults: INFO
logging). ``--clients`` sockets (raw, in ``--procs`` processes with a selector loop
each) keep ``--window`` ``place`` frames in flight each for ``--seconds``: limit orders
around 100.00, BUY or SELL at random, so about half trade on arrival (the ``make load``
mix). Figures: accepted orders/s (acks), errors by code, ack latency p50/p99,
processed orders/s (accepted until the matcher applied the last one) and, as ``make load``
prints them, the CPU milliseconds per accepted order of each process (each gunicorn
worker, the matcher, redis-server). ``--profile`` adds py-spy on the web, printed as
``make load --profile`` prints it. The last line is one JSON object.
"""

from __future__ import annotations

import multiprocessing as mp
import random
import selectors
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from bench.compare import ProcessCpu
from bench.measure import percentile
from store import keys

SYMBOLS = ("BTC-USD", "ETH-USD")


def server_frames(buf: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """The complete unmasked frames at the start of ``buf``: ``[(opcode, payload)]`` and
    how many bytes they took."""
    out, pos, end = [], 0, len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        ln, hdr = b1 & 0x7F, 2
        if ln == 126:
            if end - pos < 4:
                break
            ln, hdr = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
        elif ln == 127:
            if end - pos < 10:
                break
            ln, hdr = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
        if end - pos < hdr + ln:
            break
        out.append((b0 & 0x0F, bytes(buf[pos + hdr:pos + hdr + ln])))
        pos += hdr + ln
    return out, pos


def _placer(port: int, n: int, window: int, seconds: float, seed: int, out) -> None:
    from bench.ws_bench import _connect, _frame

    rnd = random.Random(seed)
    conns = [_connect(port, subscribe=False) for _ in range(n)]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    sent_at: dict[str, float] = {}
    lat, errors, acks = [], {}, 0
    counter = 0

    def send_one(c) -> None:
        nonlocal counter
        counter += 1
        req = f"{seed}.{counter}"
        side = rnd.choice(("BUY", "SELL"))
        # A BUY above 100.00 or a SELL below crosses the other side's resting orders.
        offset = rnd.randint(1, 5) * (1 if rnd.random() < 0.5 else -1)
        price = 10000 + (offset if side == "BUY" else -offset)
        body = {"op": "place", "reqId": req, "symbol": SYMBOLS[counter % 2], "side": side,
                "price": f"{price // 100}.{price % 100:02d}", "quantity": "0.1"}
        sent_at[req] = time.perf_counter()
        c.sock.sendall(_frame(orjson.dumps(body)))

    for c in conns:
        c.sock.setblocking(True)
        for _ in range(window):
            send_one(c)
        c.sock.setblocking(False)
    out.send("started")
    stop_at = time.monotonic() + seconds
    in_flight = n * window
    rbuf = bytearray(262144)
    while in_flight:
        if time.monotonic() > stop_at + 30:
            break
        for key, _ in sel.select(1.0):
            c = key.data
            try:
                got = c.sock.recv_into(rbuf)
            except BlockingIOError:
                continue
            if not got:
                in_flight = 0
                break
            c.buf += memoryview(rbuf)[:got]
            frames, used = server_frames(c.buf)
            del c.buf[:used]
            now = time.perf_counter()
            for opcode, payload in frames:
                if opcode != 1:
                    continue
                m = orjson.loads(payload)
                started = sent_at.pop(m.get("reqId"), None)
                if started is None:
                    continue
                in_flight -= 1
                if m["event"] == "ack":
                    acks += 1
                    lat.append((now - started) * 1000)
                else:
                    errors[m.get("code")] = errors.get(m.get("code"), 0) + 1
                if time.monotonic() < stop_at:
                    c.sock.setblocking(True)
                    send_one(c)
                    c.sock.setblocking(False)
                    in_flight += 1
    out.send((acks, errors, lat))
    for c in conns:
        c.sock.close()


def run(args) -> dict:
    from localrun import processes

    tmp = Path(tempfile.mkdtemp(prefix="ws_place_"))
    redis_srv = processes.RedisServer(tmp / "redis").start()
    r = redis_srv.client(decode_responses=True)
    port = processes.free_port()
    web = worker = None
    try:
        worker = processes.start_worker(redis_srv.url, tmp / "worker.log")
        processes.wait_until(lambda: all(r.exists(keys.heartbeat(s)) for s in SYMBOLS), timeout=60,
                             interval=0.2, what="worker heartbeats")
        web = processes.start_gunicorn(redis_srv.url, port, tmp / "gunicorn.log", RATE_LIMITS="off",
                                       WEB_CONCURRENCY=str(args.web_concurrency),
                                       GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
        ctx = mp.get_context("fork")
        per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
               for i in range(args.procs)]
        procs, pipes = [], []
        for i, n in enumerate(per):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_placer,
                               args=(port, n, args.window, args.seconds, i, child))
            proc.start()
            procs.append(proc)
            pipes.append(parent)
        for p in pipes:
            assert p.recv() == "started"
        cpu = ProcessCpu({"web": web.pid, "matcher": worker.pid,
                          "redis-server": int(r.info("server")["process_id"])})
        profiler = None
        if args.profile:
            from bench.load import Profiler, print_hot_spots

            profiler = Profiler(tmp)
            profiler.start("web", web.pid, int(args.seconds), subprocesses=True)
        t0 = time.monotonic()
        results = [p.recv() for p in pipes]
        acked_s = time.monotonic() - t0
        processes.wait_until(
            lambda: all(int(r.get(keys.applied(s)) or 0) == int(r.get(keys.seq(s)) or 0)
                        for s in SYMBOLS), timeout=300, interval=0.05, what="the matcher to drain")
        processed_s = time.monotonic() - t0
        cpu_ms = cpu.ms_per(sum(a for a, _, _ in results))
        for proc in procs:
            proc.join(10)
        acks = sum(a for a, _, _ in results)
        errors: dict = {}
        for _, e, _ in results:
            for code, count in e.items():
                errors[code] = errors.get(code, 0) + count
        lat = sorted(x for _, _, la in results for x in la)
        processed = sum(int(r.get(keys.applied(s)) or 0) for s in SYMBOLS)
        result = {
            "mode": "place", "clients": args.clients, "window": args.window,
            "seconds": round(acked_s, 1), "accepted": acks,
            "accepted_per_s": round(acks / acked_s), "errors": errors,
            "ack_ms": {"p50": round(percentile(lat, 50) or 0, 2),
                       "p99": round(percentile(lat, 99) or 0, 2)},
            "processed_per_s": round(processed / processed_s),
            "cpu_ms_per_order": cpu_ms,
        }
        if profiler:
            kept = Path(tempfile.gettempdir()) / "ws_place_web.txt"
            print_hot_spots("web", profiler.report(top=10)["web"], cpu_ms, top=10)
            shutil.copy(tmp / "web.txt", kept)
            print(f"py-spy raw samples of the web: {kept}")
        print(orjson.dumps(result).decode(), flush=True)
        return result
    finally:
        processes.stop(web)
        processes.stop(worker)
        r.close()
        redis_srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
