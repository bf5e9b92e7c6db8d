"""A daemon thread that samples a store every few ms and reconnects through outages: the
crash rounds and the failover harness time "kill -> first new commit" with it."""

from __future__ import annotations

import threading
import time

import redis


class Poller:
    """Subclasses give ``connect()`` (a fresh client) and ``sample(client)``; a store error
    drops the client and the next turn reconnects."""

    errors: tuple[type[BaseException], ...] = (redis.RedisError,)

    def __init__(self, interval: float, name: str):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def connect(self):
        raise NotImplementedError

    def sample(self, client) -> None:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        client = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self.connect()
                self.sample(client)
            except self.errors:
                client = None
                time.sleep(0.02)
            time.sleep(self.interval)
