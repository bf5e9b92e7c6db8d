"""The trading page's server side: ``/`` renders the page with what this node offers,
its static files and the chart library (from node_modules) are served by the node
itself, and anything but GET on ``/`` is a JSON error like the rest of the service."""

from __future__ import annotations

import json
import re

from app import create_app
from app.dashboard import CHART_DIST, CHART_FILE

FEATURES = re.compile(r'<script type="application/json" id="features">(.*?)</script>', re.S)


def page_features(client) -> dict:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return json.loads(FEATURES.search(response.get_data(as_text=True)).group(1))


def test_page_and_its_features(client):
    features = page_features(client)
    assert features["readOnly"] is False and features["authRequired"] is False
    assert set(features) >= {"ticker", "candles", "reduce", "cancelAll", "stopOrders", "gtd"}
    assert all(isinstance(value, bool) for value in features.values())


def test_read_only_and_auth_nodes_say_so(settings):
    client = create_app(settings.replace(read_only=True, auth_required=True)).test_client()
    features = page_features(client)
    assert features["readOnly"] is True and features["authRequired"] is True


def test_assets_are_served_by_the_node(client):
    html = client.get("/").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="(/dashboard/static/[^"]+)"', html)
    assert len(assets) == 2  # the stylesheet and the entry module
    for path in [*assets, "/dashboard/static/js/book.js", "/dashboard/static/js/checksum.js"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype in {"text/css", "text/javascript"}, path
    assert "http://" not in html and "https://" not in html  # nothing from the internet


def test_chart_library_comes_from_node_modules(client):
    response = client.get("/dashboard/vendor/lightweight-charts.mjs")
    assert (CHART_DIST / CHART_FILE).is_file(), "make install runs npm ci"
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.get_data() == (CHART_DIST / CHART_FILE).read_bytes()


def test_other_methods_on_the_page_are_json_errors(client):
    response = client.post("/", json={})
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    response = client.get("/dashboard/static/js/nope.js")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "NOT_FOUND"
