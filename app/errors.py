"""Every error leaves the service as one JSON envelope, never an HTML page.

``{"error": {"code": "VALIDATION_ERROR", "message": "...", "fields": {...}}}``
Business rejections are raised as ``ApiError``; Werkzeug's HTTP errors are mapped
by status; the store's and the archive's exceptions are mapped here, in one place
(``store_error``, also for the WebSocket's order entry); anything else is a real fault:
logged with the request id, answered 500.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, g, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from archive.db import ArchiveUnavailable
from store.pool import PoolExhausted
from store.read import BadCursor
from store.replica_acks import ReplicationTimeout

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    503: "SERVICE_UNAVAILABLE",
}
# Seconds a client told OVERLOADED should wait: a pool wait is ~2 s, a burst passes in ~1.
OVERLOADED_RETRY_AFTER = 1
# A store outage or failover: Sentinel promotes a replica in ~2-5 s, a Cluster within its
# cluster-node-timeout; the client retries about then (measured: tests/ha, docs/deployment.md).
STORE_RETRY_AFTER = 2
RETRY_AFTER = {"OVERLOADED": OVERLOADED_RETRY_AFTER, "STORE_UNAVAILABLE": STORE_RETRY_AFTER,
               "REPLICATION_TIMEOUT": STORE_RETRY_AFTER}
# What a failover looks like to a client of the primary or the cluster: the old primary
# refuses writes (READONLY), the slot's master is down or moving (CLUSTERDOWN, TRYAGAIN),
# the slot map is being rebuilt (RedisClusterException is not a RedisError).
FAILOVER_ERRORS = (redis.exceptions.ReadOnlyError, redis.exceptions.ClusterError,
                   redis.exceptions.TryAgainError, redis.exceptions.RedisClusterException)


class ApiError(Exception):
    """A client-facing error: status, stable code, message, optional per-field details."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


def store_error(err: Exception) -> ApiError | None:
    """The client-facing error for an exception of the store or the archive (None: not one
    of theirs). No request context needed: the WebSocket answers with the same codes."""
    if isinstance(err, BadCursor):
        return ApiError(400, "VALIDATION_ERROR", "Unparseable cursor.",
                        {"cursor": ["Unparseable cursor."]})
    if isinstance(err, PoolExhausted):
        # Busy, not broken: every Redis connection of this process stayed in use for the
        # whole wait bound, so nothing was read or written. Retry soon (or elsewhere).
        return ApiError(503, "OVERLOADED",
                        "This node is at capacity; nothing was done. Retry shortly.")
    if isinstance(err, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.BusyLoadingError, *FAILOVER_ERRORS)):
        # An outage or a failover in progress (web and worker follow the new primary by
        # themselves): a known state, never a 500; nothing was acknowledged.
        return ApiError(503, "STORE_UNAVAILABLE", "The order store is unreachable; retry.")
    if isinstance(err, ReplicationTimeout):
        # REPLICA_ACKS: the command is on the primary but not on enough replicas yet. It
        # may still take effect: a retry with the same clientOrderId returns it.
        return ApiError(503, "REPLICATION_TIMEOUT",
                        f"The command was not acknowledged by {err.wanted} replica(s) within "
                        f"{err.timeout_ms} ms; it may still take effect: retry with the same "
                        f"clientOrderId to learn its outcome.")
    if isinstance(err, ArchiveUnavailable):
        return ApiError(503, "ARCHIVE_UNAVAILABLE", "The history archive is unreachable; retry.")
    return None


def error_response(status: int, code: str, message: str, fields: dict | None = None):
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    response = jsonify({"error": body})
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(err.status, err.code, err.message, err.fields)

    @app.errorhandler(ValidationError)
    def _validation_error(err: ValidationError):
        fields = err.messages if isinstance(err.messages, dict) else {"_schema": err.messages}
        return error_response(400, "VALIDATION_ERROR", "Invalid request.", fields)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        message = err.description
        if status == 413:  # name the limit, not Werkzeug's generic text
            message = (f"The request body is larger than the {app.config['MAX_CONTENT_LENGTH']}"
                       f" bytes allowed.")
        return error_response(status, HTTP_CODES.get(status, "HTTP_ERROR"), message)

    @app.errorhandler(BadCursor)
    @app.errorhandler(PoolExhausted)
    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    @app.errorhandler(ArchiveUnavailable)
    @app.errorhandler(ReplicationTimeout)
    def _store_error(err: Exception):
        api = store_error(err)
        if api.code == "OVERLOADED":
            from app import metrics

            metrics.count_overloaded("rest")
            log.debug("overloaded: %s", err)
        elif api.status >= 500:
            log.warning("%s: %s", api.code.lower().replace("_", " "), err)
        response = error_response(api.status, api.code, api.message, api.fields)
        if api.code in RETRY_AFTER:
            response.headers["Retry-After"] = str(RETRY_AFTER[api.code])
        return response

    for failover_error in FAILOVER_ERRORS:
        app.register_error_handler(failover_error, _store_error)

    @app.errorhandler(Exception)
    def _fault(err: Exception):
        # A real fault, not something the client sent: log it with the request id.
        log.exception("unhandled error (request %s)", g.get("request_id"))
        return error_response(500, "INTERNAL_ERROR", "Internal error; it has been logged.")
