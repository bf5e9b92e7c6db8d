"""Liveness and readiness: Redis reachable, matchers alive, queue lag per symbol."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.redis_client import get_redis
from store import read

bp = Blueprint("health", __name__)


@bp.get("/api/health")
def health():
    settings = current_app.config["SETTINGS"]
    report = read.health(get_redis(), settings)
    return jsonify(report), 200 if report["status"] == "ok" else 503
