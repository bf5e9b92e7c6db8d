"""The web metrics hooks in-process (Flask test client, single-process registry)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from app import create_app

LIMIT = {"symbol": "ETH-USD", "order_type": "LIMIT"}


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_batch_items_and_read_only_refusals_are_counted(client, settings):
    accepted = sample("matching_orders_accepted_total", **LIMIT)
    refused = sample("matching_orders_rejected_total", op="batch_item", status="400",
                     code="VALIDATION_ERROR")
    resp = client.post("/api/orders/batch", json={"orders": [
        {"symbol": "ETH-USD", "side": "BUY", "price": 10, "quantity": 1},
        {"symbol": "ETH-USD", "side": "BUY", "price": 10.001, "quantity": 1},
        {"symbol": "ETH-USD", "side": "SELL", "price": 11, "quantity": 1},
    ]})
    assert resp.status_code == 202
    assert sample("matching_orders_accepted_total", **LIMIT) == accepted + 2
    assert sample("matching_orders_rejected_total", op="batch_item", status="400",
                  code="VALIDATION_ERROR") == refused + 1

    ro = create_app(settings.replace(read_only=True)).test_client()
    before = sample("matching_orders_rejected_total", op="place", status="403",
                    code="READ_ONLY_NODE")
    assert ro.post("/api/orders", json={"side": "BUY"}).status_code == 403
    assert sample("matching_orders_rejected_total", op="place", status="403",
                  code="READ_ONLY_NODE") == before + 1
    text = ro.get("/metrics").get_data(as_text=True)
    assert 'matching_journal_commands_total{symbol="ETH-USD"} 2.0' in text
    assert 'matching_worker_up{symbol="ETH-USD"} 0.0' in text  # no worker here
