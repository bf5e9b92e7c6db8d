"""The archive's Celery processes, now in ``localrun.processes`` (re-exported here)."""

from localrun.processes import start_archiver, start_beat  # noqa: F401
