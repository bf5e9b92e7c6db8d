"""Crash tests: real redis-server (AOF), gunicorn and matching worker processes.

``CRASH_ROUNDS`` (default 5) sets the rounds per kind of crash; ``make soak`` runs more.
"""

from __future__ import annotations

import pytest

from localrun.crash import Cluster


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "crash: kills real processes (worker, redis-server) under load")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("crash")).start()
    yield c
    c.stop()
