"""Where the CPU of an order goes, and the web stack's floor: parts of ``bench.load``.

* ``ProcessCpu``: CPU seconds of each process of the stack (every gunicorn worker on its
  own, the master, the matching worker, redis-server) between two points, from /proc.
* ``RedisCommandStats``: Redis ``INFO commandstats`` over a run (``CONFIG RESETSTAT`` at
  its start): calls and server microseconds per order for each command.
* ``run_floor``: ``bench.load --compare`` runs the same wrk load (bench/load.lua) against
  ``bench.floor`` (bare Flask, one Redis SET per POST) under the same gunicorn settings
  (gunicorn.conf.py, the same environment), so the floor of Flask + gunicorn/gevent +
  redis-py on this machine is measured in the same run as the service.
"""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import redis

from bench.measure import cpu_seconds, process_tree

ROOT = Path(__file__).resolve().parent.parent
class ProcessCpu:
    """CPU per named process over a run; ``web`` (a gunicorn master) counts each worker."""

    def __init__(self, procs: dict[str, int], web: str = "web"):
        self.pids = {name: pid for name, pid in procs.items() if name != web}
        if web in procs:
            self.pids[f"{web} master"] = procs[web]
            for i, child in enumerate(process_tree(procs[web])[1:], 1):
                self.pids[f"{web} worker {i}"] = child
        self.start = {name: cpu_seconds([pid]) for name, pid in self.pids.items()}

    def ms_per(self, count: int) -> dict[str, float]:
        """CPU milliseconds per ``count`` (orders) for each process, and the total."""
        out = {name: round(1000 * (cpu_seconds([pid]) - self.start[name]) / max(1, count), 3)
               for name, pid in self.pids.items()}
        out["total"] = round(sum(out.values()), 3)
        return out


class RedisCommandStats:
    """Redis ``INFO commandstats`` over a run, per order."""

    def __init__(self, r: redis.Redis):
        self.r = r
        r.config_resetstat()

    def per_order(self, orders: int, top: int = 8) -> list[dict]:
        stats = self.r.info("commandstats")
        rows = sorted(((name.removeprefix("cmdstat_"), s["calls"], s["usec"])
                       for name, s in stats.items()), key=lambda row: -row[2])
        n = max(1, orders)
        return [{"command": name, "calls_per_order": round(calls / n, 3),
                 "usec_per_order": round(usec / n, 2)} for name, calls, usec in rows[:top]]


def print_commandstats(mode: str, rows: list[dict]) -> None:
    print(f"  [{mode}] redis commandstats per order (server time):")
    for row in rows:
        print(f"    {row['usec_per_order']:8.2f} us  {row['calls_per_order']:6.3f} calls  "
              f"{row['command']}")


def run_floor(args, redis_url: str, port: int, log_path: Path, env: dict,
              run_wrk, profiler=None) -> dict:
    """The same single-POST load against ``bench.floor`` under the same gunicorn settings;
    ``run_wrk(base)`` runs wrk and returns its parsed figures; ``profiler``: bench.load's
    py-spy ``Profiler``, or None."""
    from localrun.processes import service_env, stop, wait_until

    proc_env = service_env(redis_url, PORT=str(port), **env)
    with open(log_path, "ab") as log:
        web = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
             "bench.floor:app"], cwd=ROOT, env=proc_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    r = redis.Redis.from_url(redis_url)
    try:
        def up():
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as resp:
                return resp.status == 200
        wait_until(up, timeout=60, interval=0.1, what="the floor app")
        stats = RedisCommandStats(r)
        cpu = ProcessCpu({"web": web.pid, "redis-server": int(r.info("server")["process_id"])})
        if profiler:
            profiler.workdir.mkdir(exist_ok=True)
            profiler.start("web", web.pid, args.seconds, subprocesses=True)
        figures = run_wrk(base)
        done = figures["requests"] - figures["non_2xx"]
        result = {"mode": "floor", "requests_per_s": round(done / figures["run_s"], 1),
                  "post_p50_ms": figures.get("post_p50_ms"),
                  "post_p99_ms": figures.get("post_p99_ms"), "non_2xx": figures["non_2xx"],
                  "cpu_ms_per_request": cpu.ms_per(done),
                  "redis_commandstats": stats.per_order(done, top=3)}
        if profiler:
            result["breakdown"] = profiler.report()["web"]["breakdown"]
    finally:
        r.close()
        stop(web)
    print(f"[floor] bare Flask + one Redis SET, same gunicorn settings: "
          f"{result['requests_per_s']}/s; POST p50 {result['post_p50_ms']} ms p99 "
          f"{result['post_p99_ms']} ms; non-2xx {result['non_2xx']}; CPU ms per request "
          f"{result['cpu_ms_per_request']}", flush=True)
    if profiler:
        web_ms = sum(ms for name, ms in result["cpu_ms_per_request"].items()
                     if name.startswith("web "))
        print_breakdown("the floor's web", result["breakdown"], web_ms)
    return result


# Where a web sample goes: the first rule whose marker is in any frame of the stack
# (so the access line's logging counts as the access line even inside after_request).
WEB_PHASES = (
    ("event hub / relay threads", ("app/events.py", "app/ws/", "app/market_feed.py")),
    ("access line (logging)", ("logging/__init__.py", "logging_setup.py")),
    ("Celery wake-up send", ("send_wakeup",)),
    ("metrics (prometheus)", ("prometheus_client/", "app/metrics.py")),
    ("before_request hooks", ("preprocess_request",)),
    ("marshmallow validation", ("marshmallow/", "schemas/orders.py")),
    ("request JSON parse", ("json_body",)),
    ("journal accept (Lua via redis-py)", ("store/journal.py",)),
    ("response JSON (jsonify)", ("jsonify", "OrjsonProvider")),
    ("view, other", ("app/api/", "app/trading.py")),
    ("after_request, other", ("process_response",)),
    ("gunicorn HTTP parse", ("gunicorn/http/message.py", "gunicorn/http/parser.py")),
    ("gunicorn response write", ("gunicorn/http/wsgi.py",)),
    ("Flask/werkzeug dispatch", ("flask/", "werkzeug/")),
)
WORKER_PHASES = (
    ("commit (Redis pipeline)", ("store/commit.py",)),
    ("journal read", ("store/journal.py",)),
    ("engine (matching)", ("engine/",)),
    ("apply (codec, events)", ("workers/apply.py", "store/codec.py")),
    ("Celery/kombu (task delivery)", ("celery/", "kombu/")),
)


def collapsed_samples(collapsed: str):
    """``(stack, samples)`` of each line of a py-spy raw (collapsed) profile."""
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack, int(count)


def breakdown(collapsed: str, phases=WEB_PHASES) -> list[tuple[str, float]]:
    """Share of a py-spy raw profile's samples per phase (the rest: "loop, other")."""
    counts: dict[str, int] = {}
    total = 0
    for stack, n in collapsed_samples(collapsed):
        total += n
        name = next((name for name, markers in phases
                     if any(m in stack for m in markers)), "gunicorn/gevent loop, other")
        counts[name] = counts.get(name, 0) + n
    return [(name, round(100 * n / total, 1))
            for name, n in sorted(counts.items(), key=lambda kv: -kv[1])] if total else []


def print_breakdown(proc: str, rows: list[tuple[str, float]], cpu_ms: float | None) -> None:
    print(f"  where {proc}'s CPU goes" + (f" ({cpu_ms:.3f} ms per order):" if cpu_ms else ":"))
    for name, pct in rows:
        ms = f"{cpu_ms * pct / 100:7.3f} ms" if cpu_ms else ""
        print(f"    {pct:5.1f}%  {ms}  {name}")
