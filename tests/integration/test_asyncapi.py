"""The AsyncAPI document of /ws: complete, every $ref resolves, every example is valid
against both the generated JSON Schema and the marshmallow schema it came from, and the
client examples are frames the server accepts."""

from __future__ import annotations

import jsonschema_rs
import pytest

from schemas import ws as frames
from schemas import ws_events as ev


@pytest.fixture
def doc(client):
    reply = client.get("/api/asyncapi.json")
    assert reply.status_code == 200
    return reply.json


def _refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.append(v)
            else:
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def _resolve(doc, ref):
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_ref_resolves_and_every_channel_and_op_is_there(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["node"]["pathname"] == "/ws"
    for ref in _refs(doc, []):
        assert _resolve(doc, ref) is not None, ref
    assert set(doc["channels"]) == {"control", *frames.CHANNELS}
    ops = doc["operations"]
    assert {"ping", "auth", "unsubscribe"} <= set(ops)
    for channel in frames.CHANNELS:
        assert ops[f"subscribe_{channel}"]["action"] == "receive"
        assert ops[f"send_{channel}"]["action"] == "send"
        # An operation's messages belong to its channel (AsyncAPI 3).
        for m in ops[f"send_{channel}"]["messages"]:
            assert m["$ref"].startswith(f"#/channels/{channel}/messages/")
    assert set(ev.EVENTS) <= set(doc["components"]["messages"])
    assert "frames per" in doc["info"]["description"] or "frame is at most" in \
        doc["info"]["description"]


def test_examples_valid_against_json_schema_and_marshmallow(doc):
    schemas = doc["components"]["schemas"]
    checked = 0
    for name, message in doc["components"]["messages"].items():
        target = {"$ref": message["payload"]["$ref"], "components": {"schemas": schemas}}
        validator = jsonschema_rs.Draft202012Validator(target)
        for example in message["examples"]:
            payload = example["payload"]
            errors = [e.message for e in validator.iter_errors(payload)]
            assert errors == [], (name, errors)
            if "op" in payload:
                frames.parse_frame(payload)  # the server takes it
            else:
                schema_cls = ev.EVENTS[name][0]
                assert schema_cls().validate(payload) == {}, name
            checked += 1
    assert checked >= 15


def test_docs_page_shows_rest_and_websocket_side_by_side(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "class='cols'" in page and "WebSocket /ws" in page
    assert "`" not in page  # backticks became <code>
    for text in ("/api/candles", "/api/ticker", "/api/time", "subscribe candles",
                 "checksum", "RATE_LIMITED", "/api/asyncapi.json"):
        assert text in page, text
    # wait/timeout have descriptions, defaults and limits.
    assert "5000" in page and "30000" in page and "wait for the matcher" in page
