"""JSON logs for the web and the worker: one line per record, to ``LOG_DIR/<name>.log``
and to stderr, at ``LOG_LEVEL``.

``configure("web", settings)`` (app factory, production path) and
``configure("worker", settings)`` (``workers.main``) are the only calls; everything
else logs with ``logging.getLogger(__name__)`` as usual. A line looks like::

    {"ts":"2024-11-24T10:00:00.123Z","level":"INFO","logger":"workers.apply",
     "process":"worker","pid":123,"msg":"committed BTC-USD seq 5..7 (3 commands)",
     "symbol":"BTC-USD","request_ids":["abc123","..."]}

Extra fields come from ``log.info(..., extra={...})``. In a web request the line also
carries ``request_id`` (flask ``g.request_id``, the ``X-Request-Id`` header), which the
accept path stores in the journal (field ``rid``) and the worker names again in its
commit line, so ``grep abc123 logs/web.log logs/worker.log`` follows one request.

Several gunicorn workers append to one ``web.log``: each record is one ``write`` of a
short line on an O_APPEND file, so lines do not interleave in practice (records over
the stdio buffer size, e.g. huge tracebacks, might). Rotation is left to the platform
(logrotate ``copytruncate``, or stderr to journald / the container runtime).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName",
}
_MARK = "_me_json_handler"


_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


# The pid is cached (and refreshed in forked children) instead of letting every
# LogRecord call os.getpid(): that syscall showed up at ~60 us per record on the dev VM.
os.register_at_fork(after_in_child=_refresh_pid)
_base_record_factory = logging.getLogRecordFactory()


def _record_with_cached_pid(*args, **kwargs) -> logging.LogRecord:
    """``record.process`` from the cached pid: with ``logProcesses`` off it would be None,
    and gunicorn's own handlers format ``%(process)d`` (a TypeError at every line)."""
    record = _base_record_factory(*args, **kwargs)
    record.process = _pid
    return record


def _request_id() -> str | None:
    try:
        from flask import g, has_request_context
    except ImportError:  # the worker does not need Flask for logging
        return None
    if has_request_context():
        return g.get("request_id")
    return None


class JsonFormatter(logging.Formatter):
    """A LogRecord as one compact JSON object (orjson; non-JSON values via ``str``)."""

    def __init__(self, process_name: str):
        super().__init__()
        self.process_name = process_name
        self._second, self._second_text = None, ""

    def format(self, record: logging.LogRecord) -> str:
        # Both handlers (the file and stderr) share this formatter: the second one gets
        # the line the first made (an access line per POST at INFO).
        cached = record.__dict__.get("_me_line")
        if cached is not None and cached[0] is self:
            return cached[1]
        line = self._format(record)
        record._me_line = (self, line)
        return line

    def _format(self, record: logging.LogRecord) -> str:
        ct = record.created
        second = int(ct)
        if second != self._second:  # strftime once per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        out = {
            "ts": self._second_text + f".{int(ct % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "process": self.process_name,
            "pid": _pid,
            "msg": record.getMessage(),
        }
        rid = _request_id()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


def configure(process_name: str, settings) -> logging.Logger:
    """Route the root logger to ``<log_dir>/<process_name>.log`` and stderr, as JSON.

    Idempotent: calling it again (a second app in one process) replaces our handlers,
    leaves anybody else's alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
            handler.close()
    formatter = JsonFormatter(process_name)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_dir:
        os.makedirs(settings.log_dir, exist_ok=True)
        handlers.append(logging.FileHandler(
            os.path.join(settings.log_dir, f"{process_name}.log"), encoding="utf-8"))
    for handler in handlers:
        setattr(handler, _MARK, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    logging.logProcesses = False  # see _pid above
    logging.setLogRecordFactory(_record_with_cached_pid)
    return root
