"""Flask application factory: settings first, then resources, then blueprints."""

from __future__ import annotations

import itertools
import os
import re
import secrets
from decimal import Decimal

import orjson
from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

from settings import Settings, load_settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_request_counter = itertools.count(1)
_request_prefix = (0, "")  # (pid, random prefix): ids stay unique across workers


def _new_request_id() -> str:
    """A random per-process prefix and a counter: unique without a urandom call per
    request (secrets.token_hex was 1.4 % of the web's CPU under load)."""
    global _request_prefix
    pid = os.getpid()
    if _request_prefix[0] != pid:
        _request_prefix = (pid, secrets.token_hex(5))
    return f"{_request_prefix[1]}{next(_request_counter):x}"


def _json_default(obj):
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def orjson_body(obj) -> bytes:
    """A response body as ``jsonify`` makes it (compact, a newline at the end); TypeError
    for what orjson refuses (the caller falls back to the stdlib encoder)."""
    return orjson.dumps(obj, default=_json_default, option=_ORJSON_OPTIONS)


class OrjsonProvider(DefaultJSONProvider):
    """jsonify() through orjson, several times faster than the stdlib encoder; what
    orjson refuses (an integer past 64 bits echoed in an error) goes the stdlib way.
    Request bodies are parsed elsewhere (app.api.common.json_body, exact decimals)."""

    sort_keys = False
    compact = True

    def dumps(self, obj, **kwargs) -> str:
        try:
            return orjson_body(obj).decode()
        except TypeError:
            return super().dumps(obj, **kwargs)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson_body(obj)
        except TypeError:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)


def create_app(settings: Settings | None = None, *,
               configure_logging: bool | None = None) -> Flask:
    """Build the web app. Tests pass their own ``Settings``; production reads the env.

    ``configure_logging`` (default: only when the settings come from the env, i.e. the
    gunicorn/wsgi path) routes logging to JSON lines in LOG_DIR/web.log and stderr.
    """
    if configure_logging is None:
        configure_logging = settings is None
    settings = settings or load_settings()
    if configure_logging:
        import logging_setup

        logging_setup.configure("web", settings)
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    from schemas.markets import markets

    app.extensions["markets"] = markets(settings)  # looked up on every order request

    @app.before_request
    def _request_id():
        # Carried into the journal and the worker's log lines for this command; a caller's
        # id is kept only if it is a plain token (it ends up in logs and the journal).
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else _new_request_id()

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    from app import auth, errors, metrics, redis_client

    errors.init_app(app)
    redis_client.init_app(app)
    auth.init_app(app)
    metrics.init_app(app)  # /metrics, request counters, access log line
    from app import ratelimit

    ratelimit.init_app(app)  # after auth: a read-only node refuses writes before counting

    from workers.celery_app import make_celery

    app.extensions["celery"] = make_celery(settings)

    from app.api import docs, health, market_data, orders

    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(market_data.bp)
    app.register_blueprint(docs.bp)
    from app.api import asyncapi

    app.register_blueprint(asyncapi.bp)  # /api/asyncapi.json (the /ws protocol)

    from app import dashboard

    app.register_blueprint(dashboard.bp)  # the trading page at /

    from app import ws

    ws.init_app(app)
    return app
