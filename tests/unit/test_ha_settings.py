"""Settings for a store past one Redis (settings.py; the clients: store/connect.py)."""

from __future__ import annotations

import pytest

from settings import SettingsError, load_settings
from store import connect


def test_sentinels_make_the_broker_follow_the_primary_too():
    s = load_settings({"REDIS_SENTINELS": "127.0.0.1:26379, 127.0.0.1:26380",
                       "REDIS_SENTINEL_MASTER": "venue"})
    assert s.redis_sentinels == ("127.0.0.1:26379", "127.0.0.1:26380")
    assert s.broker == "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380"
    assert s.broker_transport_options["master_name"] == "venue"
    assert connect.kind(s) == "sentinel"


def test_a_cluster_store_without_a_broker_fails_at_start_and_says_why():
    with pytest.raises(SettingsError, match="CELERY_BROKER_URL"):
        load_settings({"REDIS_CLUSTER_NODES": "127.0.0.1:7000"})
    s = load_settings({"REDIS_CLUSTER_NODES": "127.0.0.1:7000,127.0.0.1:7001",
                       "CELERY_BROKER_URL": "redis://127.0.0.1:6390/1"})
    assert connect.kind(s) == "cluster" and s.broker == "redis://127.0.0.1:6390/1"
    assert "master_name" not in s.broker_transport_options


def test_cluster_and_sentinel_together_are_refused():
    with pytest.raises(SettingsError, match="both"):
        load_settings({"REDIS_CLUSTER_NODES": "127.0.0.1:7000", "CELERY_BROKER_URL": "x://",
                       "REDIS_SENTINELS": "127.0.0.1:26379"})


def test_replica_acks_defaults_and_env():
    assert load_settings({}).replica_acks == 0
    assert load_settings({}).replica_ack_timeout_ms == 200
    s = load_settings({"REPLICA_ACKS": "2", "REPLICA_ACK_TIMEOUT_MS": "50"})
    assert (s.replica_acks, s.replica_ack_timeout_ms) == (2, 50)
    assert connect.kind(s) == "single"
