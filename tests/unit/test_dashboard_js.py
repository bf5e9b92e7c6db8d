"""The trading page's pure JS modules (app/dashboard/static/js), run under Node against
values computed here in Python: the book checksum (api.md section 10: CRC32, unsigned,
of "price:quantity" of the best 25 bids then the best 25 asks, joined by "|", numbers
as written in the JSON), the local book's gap and checksum checks, and the candles and
ticker computed from trades."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import zlib
from decimal import Decimal

import orjson
import pytest

from tests.support import ROOT

JS = ROOT / "app" / "dashboard" / "static" / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def run_js(script: str, stdin: str = "", *flags: str) -> object:
    """Run an ES module script under Node; it prints one JSON value."""
    done = subprocess.run([NODE, *flags, "--input-type=module", "-e", script], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def python_checksum(book_json: str) -> int:
    """The reference: the levels' numbers exactly as the JSON text wrote them."""
    book = json.loads(book_json, parse_float=str, parse_int=str)
    levels = book["bids"][:25] + book["asks"][:25]
    text = "|".join(f"{level['price']}:{level['quantity']}" for level in levels)
    return zlib.crc32(text.encode("utf-8"))


def random_book(rng: random.Random, tick: str, lot: str, depth: int) -> str:
    """A book as the service writes it: floats from exact ticks and lots, via orjson."""
    tick_d, lot_d = Decimal(tick), Decimal(lot)
    mid = rng.randint(1000, 5_000_000)

    def levels(direction: int):
        prices = sorted({mid + direction * rng.randint(1, 50_000) for _ in range(depth)},
                        reverse=direction < 0)
        return [{"price": float(p * tick_d), "quantity": float(rng.randint(1, 10**7) * lot_d),
                 "orders": rng.randint(1, 9)} for p in prices]

    book = {"event": "orderbook", "type": "snapshot", "symbol": "X", "sequence": 1,
            "bids": levels(-1), "asks": levels(1)}
    return orjson.dumps(book).decode()


CHECKSUM_OF_EACH_LINE = f"""
import {{ bookChecksum, parseFrame }} from "{JS.as_uri()}/checksum.js";
const lines = (await new Promise((done) => {{
  let text = "";
  process.stdin.on("data", (c) => (text += c));
  process.stdin.on("end", () => done(text));
}})).trim().split("\\n");
console.log(JSON.stringify(lines.map((line) => {{
  const frame = parseFrame(line);
  return bookChecksum(frame.bids, frame.asks);
}})));
"""


@pytest.mark.parametrize("source_text", [True, False], ids=["json-source", "repr-fallback"])
def test_checksum_matches_python(source_text):
    """With JSON.parse source access (browsers) the JS uses the numbers' text; without it
    (older engines, Node without the flag) it writes floats the way the service's
    encoder (orjson) does."""
    rng = random.Random(16)
    books = [random_book(rng, tick, lot, depth)
             for tick, lot, depth in [("0.01", "0.001", 40), ("0.001", "0.1", 30),
                                      ("0.5", "1", 10), ("0.00001", "0.00001", 25),
                                      ("100", "0.01", 3), ("0.01", "0.001", 0)]]
    books.append(orjson.dumps({"bids": [{"price": 100.0, "quantity": 1e-05},
                                        {"price": 0.5, "quantity": 1.5e-7}],
                               "asks": [{"price": 1e16, "quantity": 2.5}]}).decode())
    flags = ("--harmony-json-parse-with-source",) if source_text else ()
    got = run_js(CHECKSUM_OF_EACH_LINE, "\n".join(books), *flags)
    assert got == [python_checksum(b) for b in books]


def test_crc32_known_values():
    got = run_js(f"""
import {{ crc32 }} from "{JS.as_uri()}/checksum.js";
console.log(JSON.stringify(["", "a", "101.25:0.5|101.3:2.0", "€"].map(crc32)));
""")
    assert got == [zlib.crc32(s.encode()) for s in ["", "a", "101.25:0.5|101.3:2.0", "€"]]


def test_local_book_chains_and_verifies():
    """Snapshot, a chained update with the right checksum, then a gap and a bad checksum
    each report why the book must be resubscribed."""
    after = {"bids": [{"price": 99.5, "quantity": 1.25}],
             "asks": [{"price": 100.0, "quantity": 0.3}, {"price": 101.0, "quantity": 0.5}]}
    good = python_checksum(orjson.dumps(after).decode())
    frames = [
        {"type": "snapshot", "sequence": 5, "bids": [{"price": 99.5, "quantity": 1.25}],
         "asks": [{"price": 100.0, "quantity": 0.5}]},
        {"type": "update", "sequence": 7, "prevSequence": 5, "checksum": good,
         "changes": [{"side": "SELL", "price": 100.0, "quantity": 0.3},
                     {"side": "SELL", "price": 101.0, "quantity": 0.5}]},
        {"type": "update", "sequence": 9, "prevSequence": 8, "changes": []},
    ]
    script = f"""
import {{ LocalBook }} from "{JS.as_uri()}/book.js";
import {{ parseFrame }} from "{JS.as_uri()}/checksum.js";
const frames = {json.dumps([orjson.dumps(f).decode() for f in frames])}.map(parseFrame);
const book = new LocalBook("X");
const out = [book.applySnapshot(frames[0]), book.applyUpdate(frames[1]), book.sequence,
  book.asks().map((l) => [l.price, l.quantity]), book.applyUpdate(frames[2])];
const bad = {{ ...frames[1], sequence: 10, prevSequence: 7, checksum: 1, changes: [] }};
out.push(book.applyUpdate(bad), book.verified);
const trusting = new LocalBook("X", {{ checksums: false }});
trusting.applySnapshot(frames[0]);
out.push(trusting.applyUpdate(bad), trusting.applyUpdate({{ ...bad, prevSequence: 5 }}));
console.log(JSON.stringify(out));
"""
    got = run_js(script, "", "--harmony-json-parse-with-source")
    assert got[:4] == [None, None, 7, [[100.0, 0.3], [101.0, 0.5]]]
    assert got[4] == "sequence gap: expected prevSequence 7, got 8"
    assert got[5].startswith("checksum mismatch at 10")
    assert got[6] == 1  # the one matching checksum
    # Checksums off: the chain is still checked, a wrong checksum no longer is.
    assert got[7] == "sequence gap: expected prevSequence 5, got 7"
    assert got[8] is None


def test_candles_and_ticker_from_trades():
    trades = [{"sequence": i + 1, "price": p, "quantity": q, "timestamp": t}
              for i, (p, q, t) in enumerate([(100.0, 1.0, 60_000), (102.0, 0.5, 61_000),
                                             (99.0, 2.0, 119_999), (101.0, 1.0, 120_000)])]
    script = f"""
import {{ candlesFromTrades, tickerFromTrades }} from "{JS.as_uri()}/aggregate.js";
const trades = {json.dumps(trades)};
console.log(JSON.stringify([candlesFromTrades(trades.slice().reverse(), 60000),
  tickerFromTrades("X", trades, 130000)]));
"""
    candles, ticker = run_js(script)
    assert [(c["time"], c["open"], c["high"], c["low"], c["close"], c["volume"], c["trades"])
            for c in candles] == [(60_000, 100.0, 102.0, 99.0, 99.0, 3.5, 3),
                                  (120_000, 101.0, 101.0, 101.0, 101.0, 1.0, 1)]
    assert (ticker["lastPrice"], ticker["open24h"], ticker["high24h"], ticker["low24h"],
            ticker["volume24h"], ticker["priceChange"], ticker["trades24h"]) == (
        101.0, 100.0, 102.0, 99.0, 4.5, 1.0, 4)


def test_number_text_is_the_encoders():
    values = [0.0, 1.0, 100.0, 0.5, 101.25, 1e-5, 9.99e-6, 1e-6, 1.5e-7, 123456789.123,
              999999999999999.0, 1e16, 1.5e17, 1e21, 0.1 + 0.2, 12.3456789]
    script = f"""
import {{ numberText }} from "{JS.as_uri()}/checksum.js";
console.log(JSON.stringify({json.dumps(values)}.map(numberText)));
"""
    assert run_js(script) == [orjson.dumps(v).decode() for v in values]
