"""Every Lua script call names all its keys in KEYS, on one hash slot (a Redis Cluster
runs it then; it refuses a script that touches an undeclared key or two slots).

Static: no script builds a key (every key argument of ``redis.call`` is ``KEYS[...]``).
Live: a real redis-server's MONITOR sees every script call of the service's paths (REST
place, batch, cancel, reduce, replace, cancel-all, GTD expiry, the matcher's commit, its
lease, the archive mover's removal); each call's KEYS hash to one slot, and every key a
script's own commands touch is one some call declared.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from redis.crc import key_slot

from store import journal
from tests.archive.venue import Venue

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"redis\.call\(\s*'(\w+)'\s*(?:,\s*([^,)]+))?")
NO_KEY = {"TIME"}


def _lua_sources() -> dict[str, str]:
    out = {p.relative_to(ROOT).as_posix(): p.read_text()
           for p in sorted(ROOT.glob("*/lua/*.lua"))}
    from store import lease  # its two small scripts are inline
    out["store/lease.py"] = lease._RENEW + lease._RELEASE
    return out


def test_no_script_builds_a_key():
    sources = _lua_sources()
    assert {"store/lua/accept.lua", "store/lua/commit.lua", "store/lua/remove.lua"} <= set(
        sources)
    calls = 0
    for name, text in sources.items():
        for command, first in CALL.findall(text):
            calls += 1
            if command.upper() in NO_KEY:
                continue
            assert first.strip().startswith("KEYS["), f"{name}: {command} on {first.strip()}"
    assert calls > 40  # the pattern does see the scripts' calls


class Monitor:
    """Every command the server runs, from a MONITOR connection on its own thread."""

    STOP = "monitor-stop-marker"

    def __init__(self, r):
        self.r = r
        self.lines: list[dict] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self):
        with self.r.monitor() as m:
            self._ready.set()
            for command in m.listen():
                if self.STOP in command["command"]:
                    return
                self.lines.append(command)

    def stop(self) -> list[dict]:
        self.r.echo(self.STOP)
        self._thread.join(10)
        assert not self._thread.is_alive()
        return self.lines


def _script_calls(lines):
    """(declared keys) of each EVAL/EVALSHA, and (command, first argument) of each command
    a script ran."""
    calls, inner = [], []
    for line in lines:
        # redis-py joins the unquoted arguments with spaces: keys, command names, shas and
        # counts have none, so the words up to the last key are exact.
        words = line["command"].split()
        if not words:
            continue
        command = words[0].upper()
        if line.get("client_type") == "lua":
            inner.append((command, words[1] if len(words) > 1 else None))
        elif command in ("EVAL", "EVALSHA"):
            calls.append(words[3:3 + int(words[2])])
    return calls, inner


@pytest.fixture
def venue(settings, tmp_path):
    from archive import db

    url = f"sqlite:///{tmp_path / 'archive.sqlite3'}"
    db.migrate(url)
    venue = Venue(settings.replace(archive_url=url, archive_after_seconds=0.0,
                                   archive_batch=50, checkpoint_every=5))
    yield venue
    db.dispose_all()


def test_every_script_call_is_single_slot_and_declares_its_keys(venue, r):
    monitor = Monitor(r)
    ids = []
    for symbol in ("BTC-USD", "ETH-USD"):
        for i in range(3):
            ids.append(venue.place(symbol=symbol, type="BUY", price=f"{100 + i}",
                                   clientOrderId=f"c{i}")["id"])
        venue.place(symbol=symbol, type="SELL", price="101")  # trades with a resting BUY
        venue.place(symbol=symbol, type="BUY", orderType="STOP_LIMIT", stopPrice="200",
                    price="200")
        venue.place(symbol=symbol, type="BUY", price="90", timeInForce="GTD",
                    expireTime=int(time.time() * 1000) + 1100)
        batch = venue.http.post("/api/orders/batch", json={"orders": [
            {"symbol": symbol, "type": "SELL", "price": "150", "quantity": "1"}] * 2})
        assert batch.status_code == 202
    venue.match()
    assert venue.http.delete(f"/api/orders/{ids[0]}").status_code == 202
    assert venue.http.patch(f"/api/orders/{ids[3]}", json={"quantity": "0.5"}).status_code \
        == 202
    replaced = venue.http.post(f"/api/orders/{ids[4]}/replace",
                               json={"type": "BUY", "price": "95", "quantity": "1"})
    assert replaced.status_code == 202
    venue.match()
    time.sleep(1.2)  # the GTD orders' expireTime passes (Redis's clock decides)
    for symbol in ("BTC-USD", "ETH-USD"):
        assert journal.journal_due_expiries(r, symbol) > 0
    assert venue.http.delete("/api/orders").status_code == 202  # cancel-all, every symbol
    venue.match()
    moved = venue.move()
    assert moved.orders > 0  # the mover's fenced removal ran
    calls, inner = _script_calls(monitor.stop())

    declared = set()
    for script_keys in calls:
        assert script_keys, "a script call without keys"
        slots = {key_slot(k.encode()) for k in script_keys}
        assert len(slots) == 1, f"keys on {len(slots)} slots: {script_keys}"
        declared.update(script_keys)
    assert len(calls) > 20
    touched = {first for command, first in inner if command not in NO_KEY}
    assert touched, "MONITOR showed no command run by a script"
    assert touched <= declared, f"undeclared keys: {sorted(touched - declared)[:5]}"
