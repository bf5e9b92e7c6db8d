"""Many WebSocket clients connecting at the same moment (a deploy's reconnect storm).

``storm(port, clients, procs, symbols)`` forks ``procs`` client processes; each opens
its share of the connections all at once (asyncio, raw frames), subscribes every one to
``trade`` on each symbol and reports how many were acked. The caller then makes trades
and calls ``finish(final)`` with each symbol's last trade sequence: every client checks
it got every trade after its subscription exactly once, in order. Used by the storm
tests and ``bench.ws_bench --storm``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from dataclasses import dataclass, field

import orjson

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (mask key 0: the payload goes as is); payload < 126 bytes."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


@dataclass
class ClientReport:
    acks: int = 0
    errors: list = field(default_factory=list)
    trades: dict = field(default_factory=dict)  # symbol -> [sequence, ...] as received
    close_code: int | None = None
    failed: str | None = None  # connect/handshake failure
    connect_s: float = 0.0  # connect to the last ack


async def _read_frame(reader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


async def _client(port, symbols, report: ClientReport, done: asyncio.Event):
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HANDSHAKE)
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:60].decode(errors="replace"))
        for s in symbols:
            writer.write(client_frame(orjson.dumps(
                {"op": "subscribe", "channel": "trade", "symbol": s})))
    except (OSError, asyncio.IncompleteReadError, ConnectionError) as err:
        report.failed = repr(err)
        return
    try:
        while not done.is_set():
            opcode, payload = await _read_frame(reader)
            if opcode == 8:
                report.close_code = int.from_bytes(payload[:2], "big") if payload else 0
                return
            if opcode == 9:
                writer.write(client_frame(payload, 10))
                continue
            if opcode != 1:
                continue
            m = orjson.loads(payload)
            ev = m.get("event")
            if ev == "trade":
                report.trades.setdefault(m["symbol"], []).append(m["sequence"])
            elif ev == "subscribed":
                report.acks += 1
                report.connect_s = time.monotonic() - t0
            elif ev == "error":
                report.errors.append(m)
    except (OSError, asyncio.IncompleteReadError):
        if report.close_code is None and not done.is_set():
            report.failed = "connection lost"
    finally:
        writer.close()


def _proc(port, n, symbols, go, cmd, out):
    async def main():
        reports = [ClientReport() for _ in range(n)]
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, go.wait)
        tasks = [asyncio.create_task(_client(port, symbols, r, done)) for r in reports]
        while True:  # ack progress, then the final sequences
            acks = sum(r.acks for r in reports)
            settled = sum(1 for r in reports if r.acks == len(symbols) or r.failed
                          or r.close_code is not None or r.errors)
            if settled == n:
                break
            await asyncio.sleep(0.05)
        out.send(("acked", sum(r.acks == len(symbols) for r in reports), acks))
        final = await loop.run_in_executor(None, cmd.recv)
        deadline = time.monotonic() + final.pop("_timeout", 60)
        until_closed = final.pop("_until_closed", False)

        def complete(r):
            if until_closed:
                return False
            return all(r.trades.get(s, [])[-1:] == [final[s]] for s in final if final[s])
        while time.monotonic() < deadline and not all(
                complete(r) or r.failed or r.close_code is not None for r in reports):
            await asyncio.sleep(0.05)
        done.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.send(("done", [r.__dict__ for r in reports]))
    asyncio.run(main())


class Storm:
    """The client processes of one storm; ``close()`` ends them."""

    def __init__(self, port: int, clients: int, procs: int, symbols):
        ctx = mp.get_context("fork")
        self.symbols = tuple(symbols)
        self.go = ctx.Event()
        self.procs, self.pipes = [], []
        for i in range(procs):
            n = clients // procs + (1 if i < clients % procs else 0)
            cmd_parent, cmd_child = ctx.Pipe()
            out_parent, out_child = ctx.Pipe()
            p = ctx.Process(target=_proc, args=(port, n, self.symbols, self.go, cmd_child,
                                                out_child), daemon=True)
            p.start()
            self.procs.append(p)
            self.pipes.append((cmd_parent, out_parent))

    def connect(self, timeout: float = 120) -> tuple[int, float]:
        """Everyone at once; returns (clients acked on every symbol, seconds to that)."""
        time.sleep(0.2)  # the processes are waiting on go
        t0 = time.monotonic()
        self.go.set()
        acked = 0
        for _, out in self.pipes:
            if not out.poll(timeout):
                raise TimeoutError("storm clients did not settle")
            acked += out.recv()[1]
        return acked, time.monotonic() - t0

    def finish(self, final: dict, timeout: float = 60, until_closed: bool = False) -> list[dict]:
        """Reports of every client once it holds every trade up to ``final`` (or, with
        ``until_closed``, once the server closed it), or at the timeout."""
        for cmd, _ in self.pipes:
            cmd.send({**final, "_timeout": timeout, "_until_closed": until_closed})
        reports = []
        for _, out in self.pipes:
            if not out.poll(timeout + 30):
                raise TimeoutError("storm clients did not report")
            reports += out.recv()[1]
        return reports

    def close(self) -> None:
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


def raise_fd_limit() -> None:
    """Client processes hold thousands of sockets too."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

