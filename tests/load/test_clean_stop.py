"""A clean stop of a web node (a deploy, Ctrl-C on ``make run``): SIGTERM to gunicorn as
the Procfile runs it with 100 WebSocket clients connected and a request in flight.
Every client gets close 1001, the request is answered, the master exits 0 within
graceful_timeout, and nothing is logged at ERROR."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from localrun.crowd import Crowd, request
from localrun.ws_crowd import Storm
from tests.support import RedisServer, free_port, start_gunicorn, stop

pytestmark = pytest.mark.slow


def test_sigterm_closes_every_socket_1001_answers_in_flight_and_exits_0(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    port = free_port()
    log = tmp_path / "gunicorn.log"
    web = start_gunicorn(server.url, port, log, LOG_DIR=str(tmp_path / "logs"),
                         LOG_LEVEL="INFO", GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    storm = Storm(port, 100, 2, ("BTC-USD",))
    try:
        acked, _ = storm.connect()
        assert acked == 100
        # No matching worker runs: this ?wait=true order waits its 2 s out, in flight.
        path = "/api/orders?wait=true&timeout=2000"
        body = {"symbol": "BTC-USD", "side": "BUY", "price": "100.00", "quantity": "0.001"}
        in_flight = {}
        poster = threading.Thread(target=lambda: in_flight.update(outcome=Crowd(port).run(
            [[("POST", path, request("POST", path, body))]])))
        poster.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        web.send_signal(signal.SIGTERM)
        reports = storm.finish({}, timeout=15, until_closed=True)
        assert web.wait(15) == 0
        print(f"\nSIGTERM with 100 sockets and a request in flight: exit 0 after "
              f"{time.monotonic() - t0:.1f} s")
        poster.join(10)
        assert [a.status for a in in_flight["outcome"].answers] == [202]
        assert [rep["close_code"] for rep in reports] == [1001] * 100
        text = log.read_text() + "".join(p.read_text() for p in (tmp_path / "logs").glob("*"))
        bad = [line for line in text.splitlines()
               if '"level":"ERROR"' in line or "[ERROR]" in line or "Traceback" in line]
        assert bad == []
    finally:
        storm.close()
        stop(web)
        server.stop()
