"""gunicorn settings for the web node: REST and the /ws relay on one port.

Run: ``gunicorn -c gunicorn.conf.py wsgi:app`` (Procfile ``web``, tests, benches).

Worker class: gevent, 2 workers (one per core), 10,000 connections per worker.
Measured with bench/ws_bench.py (1000 clients, each on trade + orderbook of BTC-USD and
ETH-USD; 2-core box shared with other jobs, so absolute numbers are pessimistic; the same
box and moment for both classes):

  (synthetic commits/s)       gevent                     gthread (threads=700/worker)
  1000 idle sockets, RSS      188 MB (2 workers)         197 MB
  3000 sockets, RSS           284 MB                     331 MB (3,400 OS threads/worker)
  50/s  (~63k events/s)       p50 39 ms, p99 147 ms      p50 135 ms, p99 461 ms
  300/s (~280k events/s)      1.7 us CPU/event, 0 cut    3.1 us CPU/event, 9 cut (1008)
  REST 500/s offered          web 46 s CPU / 6.5M events web 125 s CPU / 6.2M events

With gthread every socket pins an OS thread (plus a reader thread, app/ws/transport.py), and
each commit wakes every one of them: GIL hand-offs make fan-out cost ~2x the CPU and ~3x
the latency, and a few thousand sockets mean a few thousand threads. gevent switches
greenlets in user space, so one worker holds thousands of idle sockets cheaply. The
price: a CPU-heavy request delays the others on its worker (handlers here are short),
and everything blocking must be gevent-aware (redis-py, sockets, threading: all patched
by gunicorn's gevent worker before the app loads). GUNICORN_WORKER_CLASS=gthread switches
back (then GUNICORN_THREADS bounds sockets per worker).

Redis connections a node opens, at most (defaults; settings.py REDIS_POOL_*):
  per web worker process: REDIS_POOL_SIZE (32) for REST and the relay's snapshot/backfill
  reads + 1 event-hub pub/sub + Celery's producer pool (broker_pool_limit, 10; one in
  practice: a wake-up task is sent only when the symbol's wake flag is clear)
  = 43; x WEB_CONCURRENCY (2) = 86 per web node. The matching worker: 4 (workers/runtime
  STORE_CONNECTIONS) + Celery's own few. Redis' maxclients (10,000) covers ~200 nodes.
Why 32 and a wait: under gevent every greenlet that needs Redis is a concurrent caller.
The pool (store/pool.py) is bounded and waits, first come first served, up to
REDIS_POOL_WAIT_MS (10 s, inside gunicorn's 30 s timeout and a client's usual 10-30 s)
before answering 503 OVERLOADED; a caller queued behind more than four times what the
pool serves in that time is refused at once. Measured with wrk -c 1000 GET /api/markets on
one node (2 workers, box shared): pool 32: 750 req/s, p50 0.7 s, no 503; pool 128: 650
req/s, p50 0.56 s; a bigger pool does not add throughput (the two cores are the limit),
it only puts more greenlets on the run queue at once. redis-py's default pool (100,
raising "Too many connections") answered 12,058 of 17,584 such reads 503 at -c 600.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import tempfile
import threading


def _raise_open_files_limit() -> int:
    """Every client socket is a file descriptor: lift the soft RLIMIT_NOFILE to the hard
    limit (often 1024 soft / 1M hard) in the master, so the workers it forks inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


OPEN_FILES_LIMIT = _raise_open_files_limit()

# Gunicorn's own knobs may come from the environment (a deploy concern, like PORT);
# the application's settings still come only from settings.load_settings().
bind = [f"0.0.0.0:{int(os.environ.get('PORT', '3000'))}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
# gevent: one greenlet per connection, WebSockets included (the socket is read on the
# route's greenlet); worker_connections caps open sockets per worker process.
# 10,000 per worker: 5,000 idle subscribed sockets on one node measured at ~35 KiB
# each (tests/capacity), so a node's 20,000 fit in about 700 MB. Never more than
# the file descriptors a worker has (less a margin for Redis, logs and the listener):
# past that, accept() fails with EMFILE and gevent spins on it.
worker_connections = min(int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "10000")),
                         OPEN_FILES_LIMIT - 256)
# gthread only (the bench's comparison): each WebSocket holds a pool thread for its life.
threads = int(os.environ.get("GUNICORN_THREADS", "1000"))
if worker_class == "gthread":
    worker_connections = threads + 100
keepalive = 5
timeout = 30
graceful_timeout = 10
accesslog = None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Start workers after fork with nothing shared: each builds its own Redis pools and
# its own EventHub (one pub/sub connection per worker process).
preload_app = False

def post_worker_init(worker):
    """On SIGTERM, close every WebSocket with 1001 so the worker drains in milliseconds
    instead of waiting graceful_timeout for long-lived sockets. Also keep the app's
    import-time objects out of the cyclic GC's scans (fan-out allocates a lot)."""
    gc.freeze()
    previous = signal.getsignal(signal.SIGTERM)

    def _term(sig, frame):
        from app import ws

        # Under gevent this handler runs as an event-loop callback, where nothing may
        # block (starting a thread waits for it: BlockingSwitchOutError). A greenlet is
        # spawned without blocking and runs right after; gthread takes a thread.
        _in_background(ws.close_all)
        if callable(previous):
            previous(sig, frame)

    signal.signal(signal.SIGTERM, _term)


def _in_background(fn) -> None:
    if worker_class == "gevent":
        import gevent

        gevent.spawn(fn)
    else:
        threading.Thread(target=fn, name="ws-close-all", daemon=True).start()


def worker_exit(server, worker):
    from app import events, ws

    ws.close_all()
    events.stop_all()


# --- Prometheus multiprocess mode (added by the ops engineer; see app/metrics.py) ------
# Every gunicorn worker writes its metric values to files in PROMETHEUS_MULTIPROC_DIR;
# /metrics, answered by any worker, sums them. The variable must be set before a worker
# imports prometheus_client, i.e. here in the master at config load. An operator's own
# directory is honoured (and emptied at start); otherwise a fresh temp dir per master.
_PROM_DIR_OWNED = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _PROM_DIR_OWNED:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="matching-prom-")


def on_starting(server):
    """Empty the metrics dir once per master start: stale files would add old counts."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker):
    """A dead worker's live gauges (open WebSockets) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the temp metrics dir this master made (an operator's dir stays)."""
    if _PROM_DIR_OWNED:
        import shutil

        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
