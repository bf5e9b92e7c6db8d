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

    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()
