"""Shared fixtures: a real redis-server per test session, flushed before each test."""

from __future__ import annotations

import pytest

from settings import Settings
from tests.support import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_server, redis_url):
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def settings(redis_url):
    return Settings(redis_url=redis_url, rate_limits="off")  # tests/e2e/test_rate_limits.py


@pytest.fixture
def app(settings):
    from app import create_app

    app = create_app(settings)
    yield app
    stop_threads(app)  # a ?wait=true or /ws started its hub: stop it with the test


def stop_threads(app) -> None:
    """Stop the threads ``app`` started (event hub, market feed)."""
    from app import events

    feed = app.extensions.pop("market_feed", None)
    if feed is not None:
        feed.stop()
    events.stop_app(app)


@pytest.fixture(scope="session", autouse=True)
def no_hub_left(redis_server):
    """After the session (before its Redis stops): no event hub may still run; one that
    did would print "event hub lost Redis ... retrying" after pytest's summary."""
    yield
    import threading

    left = [t.name for t in threading.enumerate() if t.name == "event-hub" and t.is_alive()]
    from app import events

    events.stop_all()
    assert not left, f"{len(left)} event hub thread(s) left running by tests"


@pytest.fixture
def client(app):
    return app.test_client()
