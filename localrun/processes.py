"""The service's processes on this machine, for tests and benchmarks: a redis-server on a
free port in a temp dir, gunicorn and the matching worker as the Procfile starts them, the
archive's Celery processes, and stopping them. Never touches 6379 or any Redis it did not
start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent  # the checkout: cwd of every process
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class RedisServer:
    """A redis-server of our own (a free port, its own dir); ``appendonly`` for the crash tests."""

    directory: Path
    port: int = field(default_factory=free_port)
    appendonly: bool = False
    extra: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec", "--logfile", "redis.log",
            *self.extra,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = self.client()
        wait_until(lambda: client.ping(), timeout=10, what=f"redis on {self.port}")
        client.close()
        return self

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _log_dir() -> str:
    """Service logs of a test run go to a temp dir, not the checkout's logs/."""
    global _LOG_DIR
    if _LOG_DIR is None:
        _LOG_DIR = tempfile.mkdtemp(prefix="matching-logs-")
    return _LOG_DIR


_LOG_DIR: str | None = None


def service_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING",
                "LOG_DIR": _log_dir()})
    env.pop("CELERY_BROKER_URL", None)
    env["RATE_LIMITS"] = "off"  # tests that check the limits set their own
    env.update(extra)
    return env


def start_worker(redis_url: str, log_path: Path, **extra_env: str) -> subprocess.Popen:
    """A real Celery matching worker process (solo pool, concurrency 1)."""
    env = service_env(redis_url, **extra_env)
    log = open(log_path, "ab")
    return subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "workers.main"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def start_gunicorn(redis_url: str, port: int, log_path: Path, **extra_env: str) -> subprocess.Popen:
    env = service_env(redis_url, PORT=str(port), **extra_env)
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    def _up():
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    wait_until(_up, timeout=20, what=f"gunicorn on {port}")
    return proc


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _celery(args: list[str], redis_url: str, log_path: Path, env: dict) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([str(VENV_BIN / "celery"), "-A", "workers.archive_tasks", *args],
                            cwd=ROOT, env=service_env(redis_url, **env), stdout=log,
                            stderr=subprocess.STDOUT)


def start_archiver(redis_url: str, log_path: Path, **env: str) -> subprocess.Popen:
    """The archive's Celery worker (the ``archiver`` line of the Procfile)."""
    from workers.archive_tasks import ARCHIVE_QUEUE

    return _celery(["worker", "--pool=solo", f"--queues={ARCHIVE_QUEUE}", "-n", "archiver@%h",
                    "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                   redis_url, log_path, env)


def start_beat(redis_url: str, log_path: Path, schedule: Path, **env: str) -> subprocess.Popen:
    """Celery beat sending the mover's work (the ``beat`` line of the Procfile)."""
    return _celery(["beat", f"--schedule={schedule}", "--loglevel=INFO"], redis_url, log_path,
                   env)
