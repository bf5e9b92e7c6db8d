"""Hostile-input limits: each breach is a clear 4xx and changes nothing."""

from app import create_app
from store import journal
from tests.support import durable_keys


def test_open_orders_per_account_are_capped_with_429(settings, r):
    client = create_app(settings.replace(max_open_orders_per_account=2)).test_client()
    body = {"type": "BUY", "price": "100", "quantity": "1"}
    assert client.post("/api/orders", json=body).status_code == 202
    assert client.post("/api/orders", json=body).status_code == 202
    keys_before = durable_keys(r)
    refused = client.post("/api/orders", json=body)
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "TOO_MANY_OPEN_ORDERS"
    assert journal.last_sequence(r, "BTC-USD") == 2
    assert durable_keys(r) == keys_before


def test_a_batch_over_100_orders_is_refused_whole(client, r):
    body = {"orders": [{"type": "BUY", "price": "100", "quantity": "1"}] * 101}
    resp = client.post("/api/orders/batch", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["fields"]["orders"]
    assert r.dbsize() == 0
