"""One node of the service on this machine: redis-server, a matching worker and gunicorn
(as the Procfile runs it), with one API key; used by the crowd tests and the WebSocket
bench's storm and idle modes."""

from __future__ import annotations

from pathlib import Path

from localrun import processes
from localrun.crowd import Crowd, request

ACCOUNT, KEY = "crowd", "key-crowd"
HEADERS = {"X-API-Key": KEY}


def health():
    return ("GET", "/api/health", request("GET", "/api/health"))


class Node:
    """redis-server + worker + gunicorn; ``close()`` stops them all."""

    def __init__(self, tmp: Path, **web_env: str):
        self.redis = processes.RedisServer(tmp / "redis").start()
        self.port = processes.free_port()
        env = {"API_KEYS": f"{KEY}:{ACCOUNT}", "LOG_DIR": str(tmp / "logs"),
               "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port}"}
        self.worker = processes.start_worker(self.redis.url, tmp / "worker.log", **env)
        self.web = processes.start_gunicorn(self.redis.url, self.port, tmp / "gunicorn.log",
                                            **{**env, **web_env})
        crowd = Crowd(self.port)
        processes.wait_until(lambda: crowd.run([[health()]]).answers[0].status == 200, timeout=60,
                             interval=0.2, what="/api/health 200")

    def listed_ids(self) -> list[str]:
        """Every order id the account lists, following the cursor."""
        ids, cursor, crowd = [], None, Crowd(self.port)
        while True:
            path = "/api/orders?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            answer = crowd.run([[("GET", path, request("GET", path, headers=HEADERS))]])
            page = answer.answers[0].json()
            ids += [o["id"] for o in page["orders"]]
            cursor = page["nextCursor"]
            if not cursor:
                return ids

    def close(self) -> None:
        processes.stop(self.web)
        processes.stop(self.worker)
        self.redis.stop()
