"""/metrics (web, multiprocess under gunicorn) and the worker's metrics endpoint, and
the JSON logs that let one request id be followed from web.log to worker.log."""

from __future__ import annotations

import json

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.helpers import health, http, place, settled
from tests.support import free_port, wait_until

pytestmark = pytest.mark.slow
BTC = "BTC-USD"


def scrape(url: str) -> dict[tuple, float]:
    """{(sample name, sorted labels...): value} of a Prometheus text page."""
    status, text, hdrs = http("GET", url)
    assert status == 200, text
    assert hdrs["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, *sorted(labels.items())))


def test_metrics_and_request_id_logs(procs):
    redis = procs.redis_server()
    worker_port = free_port()
    procs.worker(redis.url, WORKER_METRICS_PORT=str(worker_port))
    base = procs.web(redis.url)
    wait_until(lambda: health(base)[0] == 200, timeout=30, what="health 200")

    status, body, hdrs = http("POST", f"{base}/api/orders",
                              {"type": "BUY", "price": 100, "quantity": 1},
                              headers={"X-Request-Id": "abc123"})
    assert status == 202, body
    assert hdrs["X-Request-Id"] == "abc123"
    maker = body["id"]
    status, body = place(base, type="SELL", price=100, quantity=0.4)
    assert status == 202, body
    assert settled(base, body["id"])["status"] == "FILLED"
    assert place(base, type="SELL", price=100.001, quantity=1)[0] == 400
    status, body, _ = http("DELETE", f"{base}/api/orders/{maker}")
    assert status == 202, body
    # The maker is PARTIAL already: wait for the cancel itself, not for "not PENDING".
    assert settled(base, maker, status="CANCELLED")["status"] == "CANCELLED"
    status, body, _ = http("DELETE", f"{base}/api/orders/{maker}")
    assert status == 409 and body["error"]["code"] == "ORDER_NOT_CANCELLABLE"

    # WebSocket clients: a livesum gauge over the gunicorn workers of this node.
    ws = websocket.create_connection(base.replace("http", "ws") + "/ws", timeout=10)
    ws.send(json.dumps({"op": "ping"}))
    assert json.loads(ws.recv()) == {"event": "pong"}
    wait_until(lambda: value(scrape(f"{base}/metrics"), "matching_ws_clients") == 1,
               timeout=10, what="ws gauge 1")
    ws.close()
    wait_until(lambda: value(scrape(f"{base}/metrics"), "matching_ws_clients") == 0,
               timeout=10, what="ws gauge 0")

    wait_until(lambda: value(scrape(f"{base}/metrics"), "matching_queue_lag",
                             symbol=BTC) == 0, timeout=30, what="lag 0")
    # Any gunicorn worker answers with the node's totals: scrape a few times.
    for _ in range(4):
        m = scrape(f"{base}/metrics")
        assert value(m, "matching_orders_accepted_total", symbol=BTC, order_type="LIMIT") == 2
        assert value(m, "matching_orders_rejected_total", op="place", status="400",
                     code="VALIDATION_ERROR") == 1
        assert value(m, "matching_orders_rejected_total", op="cancel", status="409",
                     code="ORDER_NOT_CANCELLABLE") == 1
        assert value(m, "matching_accept_latency_seconds_count", endpoint="place",
                     wait="false") == 2
        assert value(m, "matching_trades_total", symbol=BTC) == 1
        assert value(m, "matching_journal_commands_total", symbol=BTC) == 3
        assert value(m, "matching_applied_commands_total", symbol=BTC) == 3
        assert value(m, "matching_worker_up", symbol=BTC) == 1
        assert value(m, "matching_worker_lease_held", symbol=BTC) == 1
        assert 0 <= value(m, "matching_worker_heartbeat_age_seconds", symbol=BTC) < 60
        assert value(m, "matching_store_up") == 1

    w = scrape(f"http://127.0.0.1:{worker_port}/metrics")
    assert value(w, "matching_accept_to_processed_seconds_count", symbol=BTC) == 3
    assert value(w, "matching_worker_commands_total", symbol=BTC, kind="place") == 2
    assert value(w, "matching_worker_commands_total", symbol=BTC, kind="cancel") == 1
    assert value(w, "matching_worker_commit_seconds_count", symbol=BTC) >= 1

    # One request id, from the web's access line to the worker's commit line.
    web_lines = [x for x in procs.log_lines("web") if x.get("request_id") == "abc123"]
    assert web_lines and web_lines[0]["path"] == "/api/orders", web_lines
    assert web_lines[0]["process"] == "web" and web_lines[0]["level"] == "INFO"

    def committed():
        return [x for x in procs.log_lines("worker") if "abc123" in x.get("request_ids", ())]

    wait_until(committed, timeout=10, what="worker commit line naming abc123")
    line = committed()[0]
    assert line["symbol"] == BTC and line["process"] == "worker", line
    assert line["logger"] == "workers.apply" and line["level"] == "INFO"
