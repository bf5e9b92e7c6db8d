"""Celery tasks: thin triggers; the work is in ``workers.apply``."""

from __future__ import annotations

from workers import runtime
from workers.celery_app import APPLY_TASK, app


@app.task(name=APPLY_TASK)
def apply_through(symbol: str, sequence: int) -> int:
    """Apply SYMBOL's journal through at least SEQUENCE (a no-op once the cursor is there)."""
    return runtime.get().drain(symbol, sequence)
