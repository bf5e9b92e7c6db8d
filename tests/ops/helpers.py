"""Real processes for the ops tests: each test gets its own redis-server(s), gunicorn
and worker processes with their own LOG_DIR, and stops them at the end."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from localrun import processes

# A short stale threshold so "worker killed -> 503" shows within seconds; the
# heartbeat is written every 250 ms, so 2 s tolerates a busy 2-core box.
STALE = "2"


def http(method: str, url: str, body=None, headers: dict | None = None,
         timeout: float = 15.0) -> tuple[int, object, dict]:
    """(status, parsed JSON body or text, headers) of one request; never raises on 4xx/5xx."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, hdrs = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as err:
        status, raw, hdrs = err.code, err.read(), dict(err.headers)
    text = raw.decode()
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


class Processes:
    """Starts and remembers processes; ``close()`` stops them all (workers first)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.log_dir = tmp / "logs"
        self.redis: list[processes.RedisServer] = []
        self.procs: list[subprocess.Popen] = []

    def redis_server(self, *extra: str, name: str = "redis") -> processes.RedisServer:
        server = processes.RedisServer(self.tmp / name, extra=extra).start()
        self.redis.append(server)
        return server

    def web(self, redis_url: str, name: str = "web", **env: str) -> str:
        port = processes.free_port()
        env = {"LOG_DIR": str(self.log_dir), "LOG_LEVEL": "INFO",
               "HEARTBEAT_STALE_SECONDS": STALE, "WEB_CONCURRENCY": "2",
               "GUNICORN_THREADS": "16", **env}
        proc = processes.start_gunicorn(redis_url, port, self.tmp / f"{name}.out", **env)
        self.procs.append(proc)
        return f"http://127.0.0.1:{port}"

    def worker(self, redis_url: str, name: str = "worker", **env: str) -> subprocess.Popen:
        env = {"LOG_DIR": str(self.log_dir), "LOG_LEVEL": "INFO",
               "HEARTBEAT_STALE_SECONDS": STALE, **env}
        proc = processes.start_worker(redis_url, self.tmp / f"{name}.out", **env)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        processes.stop(proc, signal.SIGKILL)

    def close(self) -> None:
        for proc in reversed(self.procs):
            processes.stop(proc)
        for server in self.redis:
            server.stop()

    def log_lines(self, name: str) -> list[dict]:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def place(base: str, **order) -> tuple[int, dict]:
    status, body, _ = http("POST", f"{base}/api/orders", order)
    return status, body


def settled(base: str, order_id: str, timeout: float = 20.0, status: str | None = None) -> dict:
    """The order once the matcher processed it (polls GET; no reliance on ?wait=true);
    with ``status``, once it has that status (a cancel of an order already PARTIAL)."""
    found = {}

    def done():
        code, body, _ = http("GET", f"{base}/api/orders/{order_id}")
        found["order"] = body
        if code != 200:
            return False
        return body["status"] == status if status else body["status"] != "PENDING"

    processes.wait_until(done, timeout=timeout, interval=0.05, what=f"{order_id} processed")
    return found["order"]


def health(base: str) -> tuple[int, dict]:
    status, body, _ = http("GET", f"{base}/api/health")
    return status, body
