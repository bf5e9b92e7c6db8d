"""Objects an app makes once and keeps on ``app.extensions`` (not in module globals keyed
by ``id(app)``: tests make many apps, and an id can be reused)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def app_cached(app, name: str, make: Callable[[], object]):
    """``app.extensions[name]``, made by ``make()`` on first use (documents, tables)."""
    found = app.extensions.get(name)
    if found is None:
        found = app.extensions[name] = make()
    return found


def per_process(app, name: str, lock: threading.Lock, make: Callable[[], object]):
    """``app.extensions[name]`` made once per process (the object has a ``pid``): after a
    fork the parent's object (its thread and sockets) is not the child's."""
    found = app.extensions.get(name)
    if found is None or found.pid != os.getpid():
        with lock:
            found = app.extensions.get(name)
            if found is None or found.pid != os.getpid():
                found = app.extensions[name] = make()
    return found
