"""Start the matching worker: ``python -m workers.main``.

One Celery worker, solo pool, concurrency 1, consuming the queues of the symbols it
owns (``WORKER_SYMBOLS``, default: every market).
"""

from __future__ import annotations

import logging
import os

from celery import signals

import logging_setup
from settings import load_settings
from workers import metrics as worker_metrics
from workers import runtime
from workers.celery_app import app, configure, queue_for


@signals.worker_ready.connect
def _ready(**_):
    try:
        runtime.start()
    except Exception:
        # A worker without its runtime would take tasks and never match: exit, so the
        # supervisor (honcho, systemd, the orchestrator) restarts it.
        logging.getLogger(__name__).exception("matching runtime failed to start")
        os._exit(1)


@signals.worker_shutdown.connect
def _shutdown(**_):
    runtime.stop()


def main() -> None:
    settings = load_settings()
    logging_setup.configure("worker", settings)  # JSON lines: LOG_DIR/worker.log + stderr
    worker_metrics.start_server(settings.worker_metrics_port)  # WORKER_METRICS_PORT, 0: off
    symbols = settings.worker_symbols or settings.symbols
    configure(app, settings)
    app.worker_main([
        "worker", "--pool=solo", "--concurrency=1",
        f"--queues={','.join(queue_for(s) for s in symbols)}",
        f"--hostname=matching-{'-'.join(symbols)}@%h",
        f"--loglevel={settings.log_level}",
        "--without-gossip", "--without-mingle", "-E",
    ])


if __name__ == "__main__":
    main()
