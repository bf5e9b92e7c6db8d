"""Flask application factory: settings first, then resources, then blueprints."""

from __future__ import annotations

import re
import secrets

from flask import Flask, g, request

from settings import Settings, load_settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


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
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.json.compact = True

    @app.before_request
    def _request_id():
        # Carried into the journal and the worker's log lines for this command; a caller's
        # id is kept only if it is a plain token (it ends up in logs and the journal).
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    from app import auth, errors, metrics, redis_client

    errors.init_app(app)
    redis_client.init_app(app)
    auth.init_app(app)
    metrics.init_app(app)  # /metrics, request counters, access log line

    from workers.celery_app import make_celery

    app.extensions["celery"] = make_celery(settings.broker)

    from app.api import docs, health, market_data, orders

    app.register_blueprint(health.bp)
    app.register_blueprint(orders.bp)
    app.register_blueprint(market_data.bp)
    app.register_blueprint(docs.bp)

    from app import ws

    ws.init_app(app)
    return app
