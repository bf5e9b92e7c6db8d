"""Where an idle WebSocket's memory goes: ``python -m bench.ws_memory [--clients 1000]``.

Starts its own redis-server and gunicorn (gunicorn.conf.py, ONE worker, so every socket
is in the process measured) serving ``probe_app()``: the real app plus two routes that
start tracemalloc and report. ``--clients`` sockets (localrun.ws_crowd, 4 processes)
subscribe to ``trade`` on two symbols and stay idle; then it prints, per socket: the
worker's RSS delta, tracemalloc's delta (total and the top source lines) and the C stack
greenlet saved for idle greenlets. ``--no-trace``: RSS and glibc malloc figures only
(tracemalloc's own bookkeeping inflates RSS). ``bench.ws_bench --idle`` is the figure to
compare (two workers, no tracing); this one says where it goes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import tempfile
import time
import tracemalloc
import urllib.request
from pathlib import Path

_state: dict = {}


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _malloc_kib() -> dict:
    """glibc's heap: bytes in use and held (mallinfo2), in KiB."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return {"malloc_in_use": info.uordblks // 1024,
            "malloc_held": (info.arena + info.hblkhd) // 1024}


def probe_app():
    """gunicorn's app factory (``bench.ws_memory:probe_app()``)."""
    from flask import request

    from wsgi import app

    @app.route("/_probe/start")
    def _probe_start():
        if request.args.get("trace") == "1":
            tracemalloc.start(1)
        gc.collect()
        _state["snapshot"] = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        _state["rss"], _state["malloc"] = _rss_kib(), _malloc_kib()
        return {"rss_kib": _state["rss"]}

    @app.route("/_probe/report")
    def _probe_report():
        import greenlet

        n = int(request.args["n"])
        gc.collect()
        malloc = _malloc_kib()
        out = {"rss_per_socket_b": round((_rss_kib() - _state["rss"]) * 1024 / n),
               **{f"{k}_per_socket_b": round((v - _state["malloc"][k]) * 1024 / n)
                  for k, v in malloc.items()}}
        idle = [g for g in gc.get_objects() if isinstance(g, greenlet.greenlet)]
        out["greenlets"] = len(idle)
        out["saved_stack_per_socket_b"] = round(sum(g._stack_saved for g in idle) / n)
        if _state["snapshot"] is not None:
            diff = tracemalloc.take_snapshot().compare_to(_state["snapshot"], "lineno")
            out["traced_per_socket_b"] = round(sum(d.size_diff for d in diff) / n)
            out["top"] = [[str(d.traceback[0]), round(d.size_diff / n), d.count_diff]
                          for d in diff[:25]]
        return out

    return app


def main(argv=None) -> dict:
    from localrun.processes import (
        ROOT,
        VENV_BIN,
        RedisServer,
        free_port,
        service_env,
        stop,
        wait_until,
    )
    from localrun.ws_crowd import Storm, raise_fd_limit

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--no-trace", action="store_true")
    args = p.parse_args(argv)
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="ws_memory_"))
    redis_srv = RedisServer(tmp / "redis").start()
    port = free_port()
    env = service_env(redis_srv.url, PORT=str(port), WEB_CONCURRENCY="1",
                      GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}", LOG_DIR=str(tmp / "logs"))
    log = open(tmp / "gunicorn.log", "ab")
    web = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "bench.ws_memory:probe_app()"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    storm = None

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as resp:
            return json.loads(resp.read())

    try:
        wait_until(lambda: get(f"/_probe/start?trace={0 if args.no_trace else 1}"),
                   timeout=60, interval=0.3, what="gunicorn up")
        storm = Storm(port, args.clients, 4, ("BTC-USD", "ETH-USD"))
        acked, _ = storm.connect(timeout=300)
        time.sleep(2)  # allocations settle
        result = {"clients": args.clients, "acked": acked, **get(f"/_probe/report?n={acked}")}
        print(json.dumps(result, indent=1), flush=True)
        return result
    finally:
        if storm is not None:
            storm.close()
        stop(web)
        redis_srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    main()
