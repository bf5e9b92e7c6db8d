"""Moved to ``localrun.ws_crowd`` (re-exported here for older imports)."""

from localrun.ws_crowd import (  # noqa: F401
    HANDSHAKE,
    ClientReport,
    Storm,
    client_frame,
    raise_fd_limit,
)
