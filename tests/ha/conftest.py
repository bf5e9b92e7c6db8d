"""Fixtures of the high-availability tests: a real Sentinel setup, a real Redis Cluster."""

from __future__ import annotations

import pytest

from tests.ha.servers import ClusterSetup, SentinelSetup


@pytest.fixture(scope="module")
def sentinel_setup(tmp_path_factory):
    setup = SentinelSetup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield setup.start()
    finally:
        setup.stop()


@pytest.fixture(scope="module")
def cluster_setup(tmp_path_factory):
    setup = ClusterSetup(tmp_path_factory.mktemp("cluster"))
    try:
        yield setup.start()
    finally:
        setup.stop()
