"""``make run-cluster``: the service on a local Redis Cluster, for an operator to try.

Starts 6 cluster nodes (3 primaries + 3 replicas) and a broker Redis on free loopback
ports under ``var/cluster/`` (wiped at each start), then gunicorn on ``$PORT`` (default
3000) and one matching worker per primary (``WORKER_SYMBOLS``: the markets whose slot it
holds, so a primary's failover stalls only its own symbols' matching, docs/deployment.md
§9), all with ``REDIS_CLUSTER_NODES`` and ``CELERY_BROKER_URL`` set, and prints the env
to point other tools at it (``make verify``, ``make load``). Ctrl-C
stops every process it started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from localrun.ha import ClusterSetup
from localrun.processes import ROOT, VENV_BIN, stop, wait_until
from settings import load_settings
from store import keys


def main() -> int:
    var = ROOT / "var" / "cluster"
    shutil.rmtree(var, ignore_errors=True)
    (var / "logs").mkdir(parents=True)
    setup = ClusterSetup(var / "redis").start()
    port = os.environ.get("PORT", "3000")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOG_DIR": str(var / "logs"),
           "PORT": port, **setup.env()}
    env.pop("REDIS_URL", None)
    groups: dict[int, list[str]] = {}
    for symbol in load_settings(env).symbols:
        groups.setdefault(setup.server_of(keys.journal(symbol)).port, []).append(symbol)
    worker = [str(VENV_BIN / "python"), "-m", "workers.main"]
    runs = [(f"worker-{port}", worker, {"WORKER_SYMBOLS": ",".join(group)})
            for port, group in groups.items()]
    runs.append(("web", [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
                 {}))
    procs = []
    try:
        for name, argv, extra in runs:
            log = open(var / "logs" / f"{name}.out", "ab")
            procs.append(subprocess.Popen(argv, cwd=ROOT, env={**env, **extra}, stdout=log,
                                          stderr=subprocess.STDOUT))
        wait_until(lambda: subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{port}/api/health"],
            capture_output=True).returncode == 0, timeout=60, interval=0.5,
            what="/api/health 200")
        print(f"service on a Redis Cluster: http://127.0.0.1:{port}/ (logs in {var}/logs)")
        print(f"REDIS_CLUSTER_NODES={setup.nodes} CELERY_BROKER_URL={setup.broker.url}")
        for port, group in groups.items():
            print(f"worker for the primary on {port}: WORKER_SYMBOLS={','.join(group)}")
        print("Ctrl-C stops it all.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        print("a process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in reversed(procs):
            stop(p)
        setup.stop()


if __name__ == "__main__":
    sys.exit(main())
