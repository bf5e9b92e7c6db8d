"""The Sentinel and Cluster setups live in ``localrun.ha`` (the benches use them too)."""

from localrun.ha import (  # noqa: F401  (re-exported)
    FAST_SYNC,
    MASTER,
    ClusterSetup,
    SentinelSetup,
    cluster_port,
)
