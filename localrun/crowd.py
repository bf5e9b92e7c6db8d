"""Many concurrent HTTP/1.1 keep-alive clients in one process (asyncio, raw sockets).

``Crowd(port).run(plans)`` opens one connection per plan, waits until every one is
open, then lets them all send at once; each sends its requests one after the other on
its connection (closed loop) and records every answer. Used by the concurrency tests
and ``bench.load --clients``: a thread per client would cost more than the server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import orjson


@dataclass
class Answer:
    method: str
    path: str
    status: int  # 0: the connection failed (reset, closed, refused)
    body: bytes = b""
    retry_after: str | None = None
    seconds: float = 0.0

    def json(self):
        return orjson.loads(self.body)


@dataclass
class Outcome:
    answers: list[Answer] = field(default_factory=list)
    connect_errors: int = 0
    seconds: float = 0.0

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for a in self.answers:
            out[a.status] = out.get(a.status, 0) + 1
        return out

    def server_errors(self) -> list[Answer]:
        """5xx answers and failed connections."""
        return [a for a in self.answers if a.status >= 500 or a.status == 0]


def request(method: str, path: str, body=None, headers: dict | None = None) -> bytes:
    data = orjson.dumps(body) if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, str | None]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed by the server")
    status = int(status_line.split(b" ", 2)[1])
    length, retry_after = 0, None
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"retry-after":
            retry_after = value.strip().decode()
    return status, await reader.readexactly(length), retry_after


class Crowd:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout

    def run(self, plans: list[list[tuple[str, str, bytes]]]) -> Outcome:
        """``plans``: per connection, a list of (method, path, raw request bytes)."""
        return asyncio.run(self._run(plans))

    async def _run(self, plans) -> Outcome:
        outcome = Outcome()
        go = asyncio.Event()
        opened = 0
        all_open = asyncio.Event()

        async def client(plan):
            nonlocal opened
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), self.timeout)
            except (TimeoutError, OSError):
                outcome.connect_errors += 1
                reader = writer = None
            opened += 1
            if opened == len(plans):
                all_open.set()
            await go.wait()
            if writer is None:
                return
            try:
                for method, path, raw in plan:
                    t0 = time.monotonic()
                    writer.write(raw)
                    try:
                        status, body, retry_after = await asyncio.wait_for(
                            _read_answer(reader), self.timeout)
                    except (TimeoutError, OSError, asyncio.IncompleteReadError) as err:
                        outcome.answers.append(Answer(method, path, 0, repr(err).encode()))
                        return
                    outcome.answers.append(Answer(method, path, status, body, retry_after,
                                                  time.monotonic() - t0))
            finally:
                writer.close()

        tasks = [asyncio.create_task(client(plan)) for plan in plans]
        await all_open.wait()
        t0 = time.monotonic()
        go.set()
        await asyncio.gather(*tasks)
        outcome.seconds = time.monotonic() - t0
        return outcome
