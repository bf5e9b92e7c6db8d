"""The JSON log format and level (logging_setup), in-process: needs nothing running."""

from __future__ import annotations

import json
import logging

import logging_setup
from settings import Settings


def test_log_level_and_format(tmp_path, capsys):
    settings = Settings(log_dir=str(tmp_path), log_level="WARNING")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging_setup.configure("unit", settings)
        log = logging.getLogger("tests.unit")
        log.info("not at WARNING")
        log.warning("kept %s", "here", extra={"symbol": "BTC-USD", "request_ids": ["a", "b"]})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        for h in root.handlers:
            h.flush()
    finally:
        for h in root.handlers[:]:
            if h not in saved[0]:
                root.removeHandler(h)
                h.close()
        root.setLevel(saved[1])
    lines = [json.loads(x) for x in (tmp_path / "unit.log").read_text().splitlines()]
    assert [x["msg"] for x in lines] == ["kept here", "failed"]
    assert lines[0]["symbol"] == "BTC-USD" and lines[0]["request_ids"] == ["a", "b"]
    assert lines[0]["level"] == "WARNING" and lines[0]["process"] == "unit"
    assert "ValueError: boom" in lines[1]["exc"]
    err = capsys.readouterr().err.splitlines()
    assert [json.loads(x)["msg"] for x in err if x.startswith("{")] == ["kept here", "failed"]
