"""Moved to ``localrun.crowd`` (re-exported here for older imports)."""

from localrun.crowd import Answer, Crowd, Outcome, request  # noqa: F401
