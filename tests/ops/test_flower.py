"""Flower (Procfile ``flower``) starts against the service's broker and shows the
matching worker with its per-symbol queues."""

from __future__ import annotations

import subprocess

import pytest

from tests.ops.helpers import http
from tests.support import ROOT, VENV_BIN, free_port, service_env, stop, wait_until

pytestmark = pytest.mark.slow


def test_flower_shows_the_matching_worker_and_queues(procs):
    redis = procs.redis_server()
    procs.worker(redis.url, WORKER_SYMBOLS="BTC-USD")
    port = free_port()
    env = service_env(redis.url, FLOWER_UNAUTHENTICATED_API="true")
    with open(procs.tmp / "flower.out", "ab") as out:
        flower = subprocess.Popen(
            [str(VENV_BIN / "celery"), "-A", "workers.celery_app", "flower",
             f"--port={port}", "--address=127.0.0.1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/")[0] == 200,
                   timeout=30, what="flower answering")

        def matching_worker():
            status, body, _ = http("GET", f"http://127.0.0.1:{port}/api/workers?refresh=1")
            names = [n for n in body if n.startswith("matching-BTC-USD@")] if status == 200 else []
            if names:
                return [q["name"] for q in body[names[0]].get("active_queues") or []]
            return None

        wait_until(matching_worker, timeout=30, interval=0.5, what="worker in flower")
        assert matching_worker() == ["matching.BTC-USD"]
        status, body, _ = http("GET", f"http://127.0.0.1:{port}/api/queues/length")
        assert status == 200
        assert "matching.BTC-USD" in [q["name"] for q in body["active_queues"]]
    finally:
        stop(flower)
