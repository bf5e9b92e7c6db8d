"""The archive's Celery processes for tests and benchmarks: ``archiver`` and ``beat``,
started as the Procfile starts them, on the caller's Redis and archive."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import ROOT, VENV_BIN, service_env
from workers.archive_tasks import ARCHIVE_QUEUE


def _celery(args: list[str], redis_url: str, log_path: Path, env: dict) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([str(VENV_BIN / "celery"), "-A", "workers.archive_tasks", *args],
                            cwd=ROOT, env=service_env(redis_url, **env), stdout=log,
                            stderr=subprocess.STDOUT)


def start_archiver(redis_url: str, log_path: Path, **env: str) -> subprocess.Popen:
    return _celery(["worker", "--pool=solo", f"--queues={ARCHIVE_QUEUE}", "-n", "archiver@%h",
                    "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                   redis_url, log_path, env)


def start_beat(redis_url: str, log_path: Path, schedule: Path, **env: str) -> subprocess.Popen:
    return _celery(["beat", f"--schedule={schedule}", "--loglevel=INFO"], redis_url, log_path,
                   env)
