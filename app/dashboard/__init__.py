"""The live trading page at ``GET /`` (its template and static files live beside this file).

The page is a client of the public REST and WebSocket API only (``static/js``). The one
thing it learns from the server side is what this node offers, rendered into the page as
``features``: read-only node, auth required, and which optional endpoints are routed (so
the page neither probes them with requests that would answer 404 nor shows buttons that
cannot work). Everything it shows comes from ``/api/*`` and ``/ws``.

The chart library (TradingView lightweight-charts, pinned in package.json) is installed
into ``node_modules/`` by ``make install`` (``npm ci``) and served from there: nothing
is fetched from the internet at run time, and the library is never copied into the tree.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, current_app, render_template, send_from_directory
from werkzeug.exceptions import HTTPException

from app.errors import ApiError
from engine.types import OrderType, Status, TimeInForce

ROOT = Path(__file__).resolve().parents[2]
CHART_DIST = ROOT / "node_modules" / "lightweight-charts" / "dist"
CHART_FILE = "lightweight-charts.standalone.production.mjs"

bp = Blueprint("dashboard", __name__, template_folder="templates",
               static_folder="static", static_url_path="/dashboard/static")

# Optional endpoints the page uses when this node routes them (path, method).
OPTIONAL_ENDPOINTS = {
    "ticker": ("/api/ticker", "GET"),
    "candles": ("/api/candles", "GET"),
    "reduce": ("/api/orders/x", "PATCH"),
    "cancelAll": ("/api/orders", "DELETE"),
}


def _routed(app: Flask, path: str, method: str) -> bool:
    try:
        app.url_map.bind("localhost").match(path, method=method)
    except HTTPException:  # NotFound, MethodNotAllowed (a redirect is routed too)
        return False
    except Exception:
        return True
    return True


def features(app: Flask) -> dict:
    """What the page may offer on this node; computed once per app."""
    cached = app.extensions.get("dashboard_features")
    if cached is None:
        settings = app.config["SETTINGS"]
        cached = {"readOnly": settings.read_only, "authRequired": settings.auth_required,
                  # Order types the engine knows (stop orders and GTD: api.md section 7).
                  "stopOrders": "STOP_LIMIT" in OrderType.__members__
                  and "UNTRIGGERED" in Status.__members__,
                  "gtd": "GTD" in TimeInForce.__members__}
        cached.update({name: _routed(app, path, method)
                       for name, (path, method) in OPTIONAL_ENDPOINTS.items()})
        app.extensions["dashboard_features"] = cached
    return cached


@bp.get("/")
def page():
    return render_template("dashboard/index.html", features=features(current_app))


@bp.get("/dashboard/vendor/lightweight-charts.mjs")
def chart_library():
    if not (CHART_DIST / CHART_FILE).is_file():
        raise ApiError(404, "NOT_FOUND", "The chart library is not installed; run make install.")
    return send_from_directory(CHART_DIST, CHART_FILE, mimetype="text/javascript",
                               max_age=3600)
