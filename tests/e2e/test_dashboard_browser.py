"""The trading page at ``/`` in a real browser: Debian's headless Chromium driven by
Playwright (pointed at /usr/bin/chromium; nothing downloaded), on the real stack: the
module's redis-server and matching worker (``stack``), real gunicorn nodes (one primary,
one read-only), orders placed through REST. One browser for the module, a fresh page
(and fresh symbol) per test; every test fails on a console error or page exception.

``DASHBOARD_SCREENSHOT=path`` also saves the mid-stream screenshot there (``make
screenshot`` writes docs/dashboard.png); by default it goes to the test's temp dir.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
import zlib
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import market_pool
from tests.support import free_port, start_gunicorn, stop, wait_until

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
BOOK_ROWS = 15  # per side on screen (main.js BOOK_ROWS)
WAIT_MS = 10_000  # an upper bound for anything to show up, not a timing assertion


# ---------------------------------------------------------------- processes


def _web(stack, tmp_path_factory, name: str, **env: str):
    """A gunicorn node on the stack's Redis with the module's markets: (url, process)."""
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "gunicorn.log"
    proc = start_gunicorn(stack.url, port, log, MARKETS=json.dumps(market_pool()),
                          WEB_CONCURRENCY="1", GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}",
                          RATE_LIMITS="off",  # the tests' bursts all come from 127.0.0.1
                          **env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: urllib.request.urlopen(f"{url}/api/health").status == 200,
               timeout=30, what=f"{name} health")
    return url, proc


@pytest.fixture(scope="module")
def web(stack, tmp_path_factory):
    url, proc = _web(stack, tmp_path_factory, "web")
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def read_only_web(stack, tmp_path_factory):
    url, proc = _web(stack, tmp_path_factory, "web_read_only", READ_ONLY="true")
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def auth_web(stack, tmp_path_factory):
    url, proc = _web(stack, tmp_path_factory, "web_auth", AUTH_REQUIRED="true",
                     API_KEYS="key-ann:ann,key-bob:bob")
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.expected_errors = []  # a test that provokes an API error names its status here
    yield page
    context.close()
    unexpected = [p for p in problems
                  if not any(f"status of {status} " in p for status in page.expected_errors)]
    assert unexpected == []


def open_page(page, url: str, symbol: str) -> None:
    page.goto(f"{url}/?symbol={symbol}")
    page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    page.wait_for_selector('#feed-status[data-state="live"]', timeout=WAIT_MS)
    page.wait_for_function("() => document.getElementById('book').dataset.sequence !== ''",
                           timeout=WAIT_MS)


# ---------------------------------------------------------------- REST and the screen


def place(stack, **body) -> dict:
    response = stack.client.post("/api/orders", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def seed_stream(stack, symbol: str, count: int, seed: int) -> None:
    """Resting orders on both sides around 100 with crossing ones among them, ending on
    a resting order (so the last journal sequence changed a level)."""
    rng = random.Random(seed)
    for i in range(count):
        side = rng.choice(["BUY", "SELL"])
        offset = Decimal(rng.randint(-40, 300)) / 100  # a few cross the spread
        price = Decimal(100) - offset if side == "BUY" else Decimal(100) + offset
        place(stack, symbol=symbol, side=side, price=str(price),
              quantity=str(Decimal(rng.randint(1, 2000)) / 1000))
        if i % 7 == 3:
            place(stack, symbol=symbol, side=rng.choice(["BUY", "SELL"]), orderType="MARKET",
                  quantity=str(Decimal(rng.randint(1, 500)) / 1000))
    place(stack, symbol=symbol, side="BUY", price="90.00", quantity="0.5")


def http(base: str, method: str, path: str, api_key: str) -> dict:
    """A REST call to a node of its own (the auth node knows the API keys)."""
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"X-API-Key": api_key})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def rest_book(stack, symbol: str, levels: int = BOOK_ROWS) -> dict:
    response = stack.client.get(f"/api/orderbook?symbol={symbol}&levels={levels}")
    assert response.status_code == 200
    return response.get_json()


def screen_book(page) -> dict:
    """The book's rows as shown (asks best first, like bids): [price, size, total] texts."""
    return page.evaluate("""() => {
      const rows = (id) => [...document.querySelectorAll(`#${id} tr`)]
        .map(r => [...r.cells].map(c => c.textContent));
      return {sequence: Number(document.getElementById('book').dataset.sequence),
              bids: rows('book-bids'), asks: rows('book-asks').reverse()};
    }""")


def expected_rows(levels: list[dict], price_places: int = 2, lot_places: int = 3) -> list:
    total, rows = Decimal(0), []
    for level in levels:
        quantity = Decimal(str(level["quantity"]))
        total += quantity
        rows.append([f"{Decimal(str(level['price'])):.{price_places}f}",
                     f"{quantity:.{lot_places}f}", f"{total:.{lot_places}f}"])
    return rows


def wait_for_sequence(page, sequence: int) -> None:
    page.wait_for_function(
        "seq => Number(document.getElementById('book').dataset.sequence) === seq",
        arg=sequence, timeout=WAIT_MS)


def assert_screen_matches_rest(stack, page, symbol: str) -> None:
    stack.drained(symbol)
    book = rest_book(stack, symbol)
    wait_for_sequence(page, book["sequence"])
    page.evaluate("() => new Promise(requestAnimationFrame)")  # the render after the frame
    shown = screen_book(page)
    assert shown["bids"] == expected_rows(book["bids"])
    assert shown["asks"] == expected_rows(book["asks"])
    assert shown["sequence"] == book["sequence"]


def python_checksum(book_text: str) -> int:
    book = json.loads(book_text, parse_float=str, parse_int=str)
    levels = book["bids"][:25] + book["asks"][:25]
    return zlib.crc32("|".join(f"{lv['price']}:{lv['quantity']}" for lv in levels).encode())


# ---------------------------------------------------------------- tests


def test_page_loads_with_assets_and_no_console_error(page, web, stack):
    started = time.perf_counter()
    open_page(page, web, "ETH-USD")
    ready_s = time.perf_counter() - started
    weight = page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const res = performance.getEntriesByType('resource');
      const by = (re) => res.filter(r => re.test(r.name))
        .reduce((s, r) => s + r.decodedBodySize, 0);
      return {html: nav.decodedBodySize, js: by(/\\.m?js$/), css: by(/\\.css$/),
              chart: by(/lightweight-charts/), load: nav.loadEventEnd,
              ready: Number(document.body.dataset.readyMs)};
    }""")
    print(f"\npage weight: html {weight['html']} B, js {weight['js']} B (chart library "
          f"{weight['chart']} B), css {weight['css']} B, total "
          f"{weight['html'] + weight['js'] + weight['css']} B; load event "
          f"{weight['load']:.0f} ms, data on screen {weight['ready']} ms "
          f"(wall {ready_s:.2f} s; shared 2-core machine, noisy)")
    assert weight["chart"] > 100_000  # the library came from this node
    assert page.locator("#market-select option").count() == len(market_pool())
    assert page.locator("#entry-panel").is_visible()
    assert page.locator("#apikey-box").is_hidden()  # auth is off on this node
    assert page.locator(".candles canvas").count() > 0  # the chart drew


def test_book_on_screen_equals_rest_after_seeded_stream(page, web, stack, tmp_path):
    symbol = "BTC-USD"
    open_page(page, web, symbol)
    seed_stream(stack, symbol, 60, seed=16)
    assert_screen_matches_rest(stack, page, symbol)
    # No resync on a healthy stream: every chain held, and every checksum the node sent
    # (api.md section 10, where the node has them) matched the page's own.
    assert page.get_attribute("#feed-status", "data-resyncs") == "0"
    # The page's checksum of its whole local book is the one defined on the JSON text.
    full = stack.client.get(f"/api/orderbook?symbol={symbol}&levels=25")
    local = page.evaluate("""async () => {
      const { bookChecksum } = await import('/dashboard/static/js/checksum.js');
      const book = window.dashboard.state.book;
      return bookChecksum(book.bids(25), book.asks(25));
    }""")
    assert local == python_checksum(full.get_data(as_text=True))
    assert page.locator("#tape tr").count() > 0
    assert page.locator("#my-orders tr").count() > 0
    # Mid-stream: more orders still flowing while the picture is taken.
    seed_stream(stack, symbol, 10, seed=17)
    page.wait_for_timeout(300)
    shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert_screen_matches_rest(stack, page, symbol)


def test_trade_from_rest_appears_in_tape(page, web, stack):
    symbol = stack.symbol()
    open_page(page, web, symbol)
    place(stack, symbol=symbol, side="SELL", price="101.50", quantity="0.25")
    response = stack.client.post("/api/orders?wait=true", json={
        "symbol": symbol, "side": "BUY", "price": "102.00", "quantity": "0.1"})
    assert response.status_code == 201
    trade = response.get_json()["fills"][0]
    answered = time.perf_counter()
    row = page.locator(f'#tape tr[data-sequence="{trade["sequence"]}"]')
    row.wait_for(timeout=WAIT_MS)
    print(f"\ntrade on screen {1000 * (time.perf_counter() - answered):.0f} ms after the "
          "REST answer (shared machine, noisy)")
    assert row.locator("td").all_text_contents()[:2] == ["101.50", "0.100"]
    assert row.get_attribute("class") == "BUY"  # the taker's side colours the row
    page.wait_for_function("() => document.getElementById('t-last').textContent === '101.50'",
                           timeout=WAIT_MS)
    # The open candle follows the tape, in the interval chosen.
    last_close = "() => window.dashboard.chart.series.data().at(-1)?.close"
    page.wait_for_function(f"() => ({last_close})() === 101.5", timeout=WAIT_MS)
    page.click('#intervals button[data-interval="5m"]')
    assert page.get_attribute('#intervals button[data-interval="5m"]', "aria-pressed") == "true"
    place(stack, symbol=symbol, side="SELL", price="101.25", quantity="0.2")
    stack.client.post("/api/orders", json={"symbol": symbol, "side": "BUY",
                                           "orderType": "MARKET", "quantity": "0.05"})
    page.wait_for_function(f"() => ({last_close})() === 101.25", timeout=WAIT_MS)
    bars = page.evaluate("() => window.dashboard.chart.series.data().map(b => b.time)")
    assert bars and all(bar % 300 == 0 for bar in bars)  # 5-minute buckets


def test_order_from_form_rests_then_cancel_from_page(page, web, stack):
    symbol = stack.symbol()
    open_page(page, web, symbol)
    form = page.locator("#order-form")
    page.expected_errors = [400]  # Chromium logs the rejected request itself
    # A price off the tick: the API's own words appear under the form.
    form.locator('input[name="price"]').fill("99.005")
    form.locator('input[name="quantity"]').fill("0.5")
    page.click("#submit-order")
    api_error = stack.client.post("/api/orders", json={
        "symbol": symbol, "side": "BUY", "price": "99.005", "quantity": "0.5"}).get_json()
    result = page.locator("#order-result")
    result.locator("li").first.wait_for(timeout=WAIT_MS)
    assert f"price: {api_error['error']['fields']['price'][0]}" in result.inner_text()
    assert stack.client.get(f"/api/orders?symbol={symbol}").get_json()["orders"] == []

    form.locator('input[name="price"]').fill("99.25")
    page.click("#submit-order")
    page.wait_for_function("() => /OPEN/.test(document.getElementById('order-result')"
                           ".textContent)", timeout=WAIT_MS)
    mine = page.locator("#my-orders tr.order")
    mine.first.wait_for(timeout=WAIT_MS)
    order_id = mine.first.get_attribute("data-order-id")
    order = stack.client.get(f"/api/orders/{order_id}").get_json()
    assert (order["side"], order["price"], order["quantity"], order["status"]) == (
        "BUY", 99.25, 0.5, "OPEN")
    assert_screen_matches_rest(stack, page, symbol)
    assert screen_book(page)["bids"] == [["99.25", "0.500", "0.500"]]

    mine.first.locator("button.cancel").click()
    page.locator("#my-orders tr.order").first.wait_for(state="detached", timeout=WAIT_MS)
    assert stack.client.get(f"/api/orders/{order_id}").get_json()["status"] == "CANCELLED"
    assert_screen_matches_rest(stack, page, symbol)
    assert screen_book(page)["bids"] == []


class Relay:
    """Sits between the page and /ws (Playwright's WebSocket routing): passes every frame
    both ways, except that the test may change or drop the next book update. Its
    callbacks run only inside Playwright calls."""

    def __init__(self, page):
        self.page = page
        self.sockets = []  # (page side, server side) per connection
        self.next_update = None  # frame -> frame, or None to drop it
        self.touched = 0
        page.route_web_socket("**/ws", self._connect)

    def _connect(self, ws):
        server = ws.connect_to_server()
        self.sockets.append((ws, server))
        server.on_message(lambda message: self._to_page(ws, message))
        ws.on_message(server.send)

    def _to_page(self, ws, message):
        if self.next_update is not None and '"type":"update"' in message:
            change, self.next_update = self.next_update, None
            self.touched += 1
            frame = change(json.loads(message))
            if frame is None:
                return
            message = json.dumps(frame)
        ws.send(message)

    def wait_touched(self, count: int) -> None:
        for _ in range(500):
            if self.touched >= count:
                return
            self.page.wait_for_timeout(20)
        raise TimeoutError(f"the relay saw {self.touched} updates, not {count}")

    def drop_socket(self) -> None:
        to_page, to_server = self.sockets[-1]
        to_server.close()
        to_page.close(code=1001, reason="test drops the socket")


def test_sequence_gap_and_dropped_socket_are_recovered(page, web, stack):
    """A book update dropped between the page and /ws is a real gap the page must notice
    by prevSequence; then the socket is closed under the page."""
    symbol = stack.symbol()
    relay = Relay(page)
    open_page(page, web, symbol)
    place(stack, symbol=symbol, side="BUY", price="99.00", quantity="1")
    assert_screen_matches_rest(stack, page, symbol)

    relay.next_update = lambda frame: None
    place(stack, symbol=symbol, side="BUY", price="98.00", quantity="1")
    stack.drained(symbol)
    relay.wait_touched(1)
    place(stack, symbol=symbol, side="SELL", price="101.00", quantity="2")
    page.wait_for_selector('#feed-status[data-resyncs="1"]', timeout=WAIT_MS)
    assert_screen_matches_rest(stack, page, symbol)  # the fresh snapshot has 98.00 too
    assert [row[0] for row in screen_book(page)["bids"]] == ["99.00", "98.00"]

    relay.drop_socket()
    # A trade while the page has no socket (its new one waits for the relay, which runs
    # only inside Playwright calls): the page fetches it after reconnecting.
    place(stack, symbol=symbol, side="BUY", price="101.00", quantity="0.5")
    stack.drained(symbol)
    page.wait_for_selector('#feed-status[data-reconnects="1"]', timeout=WAIT_MS)
    page.wait_for_selector('#feed-status[data-state="live"]', timeout=WAIT_MS)
    assert len(relay.sockets) == 2
    page.locator('#tape tr[data-sequence="1"]').wait_for(timeout=WAIT_MS)
    place(stack, symbol=symbol, side="SELL", price="100.50", quantity="0.5")
    assert_screen_matches_rest(stack, page, symbol)
    assert screen_book(page)["asks"] == [["100.50", "0.500", "0.500"],
                                         ["101.00", "1.500", "2.000"]]


def test_book_checksums_are_verified(page, web, stack):
    """Frames carrying api.md section 10's checksum: the relay writes the one Python
    computes from the REST book at the same sequence (accepted), then a wrong one (the
    page resubscribes). Nodes that send checksums themselves are checked the same way."""
    symbol = stack.symbol()
    relay = Relay(page)
    open_page(page, web, symbol)
    place(stack, symbol=symbol, side="BUY", price="99.00", quantity="1")
    assert_screen_matches_rest(stack, page, symbol)
    # This node sends checksums itself: the snapshot and updates so far were verified too.
    verified_before = page.evaluate("() => window.dashboard.state.book.verified")

    def rest_checksum() -> int:
        text = stack.client.get(f"/api/orderbook?symbol={symbol}&levels=25").get_data(
            as_text=True)
        return python_checksum(text)

    relay.next_update = lambda frame: {**frame, "checksum": rest_checksum()}
    place(stack, symbol=symbol, side="SELL", price="101.00", quantity="2")
    stack.drained(symbol)
    relay.wait_touched(1)
    assert_screen_matches_rest(stack, page, symbol)
    assert page.evaluate("() => window.dashboard.state.book.verified") == verified_before + 1
    assert page.get_attribute("#feed-status", "data-resyncs") == "0"

    relay.next_update = lambda frame: {**frame, "checksum": (rest_checksum() + 1) % 2**32}
    place(stack, symbol=symbol, side="SELL", price="102.00", quantity="1")
    stack.drained(symbol)
    page.wait_for_selector('#feed-status[data-resyncs="1"]', timeout=WAIT_MS)
    assert "checksum mismatch" in page.inner_text("#feed-status")
    assert_screen_matches_rest(stack, page, symbol)


def test_read_only_node_shows_market_data_only(page, stack, read_only_web):
    symbol = stack.symbol()
    place(stack, symbol=symbol, side="SELL", price="100.10", quantity="0.3")
    stack.drained(symbol)
    open_page(page, read_only_web, symbol)
    assert page.locator("#readonly-note").is_visible()
    assert page.locator("#entry-panel").is_hidden()
    assert page.locator("#mine-panel").is_hidden()
    assert_screen_matches_rest(stack, page, symbol)


def test_auth_node_asks_for_a_key_kept_in_the_tab_only(page, stack, auth_web):
    symbol = stack.symbol()
    open_page(page, auth_web, symbol)
    page.expected_errors = [401]  # the refused requests before the key is given
    assert page.locator("#apikey-box").is_visible()
    form = page.locator("#order-form")
    form.locator('input[name="price"]').fill("99.50")
    form.locator('input[name="quantity"]').fill("0.2")
    page.click("#submit-order")
    page.wait_for_function("() => /AUTH_REQUIRED/.test(document.getElementById("
                           "'order-result').textContent)", timeout=WAIT_MS)

    page.fill("#apikey", "key-ann")
    page.press("#apikey", "Tab")  # change: the socket reconnects and authenticates
    page.wait_for_selector('#feed-status[data-state="live"]', timeout=WAIT_MS)
    page.click("#submit-order")
    mine = page.locator("#my-orders tr.order")
    mine.first.wait_for(timeout=WAIT_MS)
    order_id = mine.first.get_attribute("data-order-id")
    order = http(auth_web, "GET", f"/api/orders/{order_id}", "key-ann")
    assert (order["accountId"], order["status"]) == ("ann", "OPEN")
    assert page.evaluate("() => [sessionStorage.getItem('matching.apiKey'), "
                         "localStorage.length, document.cookie]") == ["key-ann", 0, ""]
    # Cancelled elsewhere: the authenticated order_status feed takes it off the page.
    assert http(auth_web, "DELETE", f"/api/orders/{order_id}", "key-ann")["id"] == order_id
    mine.first.wait_for(state="detached", timeout=WAIT_MS)


def test_reduce_and_cancel_all_from_the_page(page, web, stack):
    """Reduce where the node routes PATCH /api/orders/<id>; cancel all through DELETE
    /api/orders?symbol= where routed, else one cancel per order: the same clicks."""
    symbol = stack.symbol()
    ids = [place(stack, symbol=symbol, side="SELL", price=price, quantity="2")["id"]
           for price in ("101.00", "102.00")]
    stack.drained(symbol)
    open_page(page, web, symbol)
    rows = page.locator("#my-orders tr.order")
    rows.nth(1).wait_for(timeout=WAIT_MS)
    features = page.evaluate("() => window.dashboard.features")
    reduce_buttons = page.locator("#my-orders button.reduce")
    if features["reduce"]:
        row = page.locator(f'#my-orders tr[data-order-id="{ids[0]}"]')
        row.locator("button.reduce").click()
        row.locator("input").fill("0.5")
        row.locator("input").press("Enter")
        stack.drained(symbol)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#book-asks tr')].some("
            "r => r.cells[0].textContent === '101.00' && r.cells[1].textContent === '0.500')",
            timeout=WAIT_MS)
        assert stack.client.get(f"/api/orders/{ids[0]}").get_json()["quantity"] == 0.5
    else:
        assert reduce_buttons.count() == 0
    page.click("#cancel-all")
    rows.first.wait_for(state="detached", timeout=WAIT_MS)
    for order_id in ids:
        assert stack.client.get(f"/api/orders/{order_id}").get_json()["status"] == "CANCELLED"
    assert_screen_matches_rest(stack, page, symbol)
    assert screen_book(page)["asks"] == []
