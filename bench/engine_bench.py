"""Benchmark of the pure matching core: ``apply()`` throughput and latency.

Run: ``.venv/bin/python -m bench.engine_bench [--commands N]`` (``make bench``).

Two runs of the same seeded mix (random.Random(42)): 55% GTC limits near the touch,
10% IOC limit or MARKET, 30% cancels of resting orders, 5% FOK or postOnly.
  * shallow: a book kept at about 1,000 resting orders;
  * deep: a book pre-filled with 100,000 orders over 10,000 price levels, kept there;
  * manage: the shallow book with order management mixed in: of every 100 commands, 10
    reduces and 5 replaces of resting orders and 5 stop orders (STOP_LIMIT / STOP_MARKET
    a few ticks from the last price, so they trigger and cascade), the rest as above.
Commands are generated beforehand by driving a scratch book (so cancels name orders that
are really resting); the timed run replays them on a fresh, identical book, timing each
``apply()`` with ``time.perf_counter_ns``. The cyclic GC is frozen after setup and
disabled during the timed loop (the engine creates no reference cycles).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time

from bench.measure import percentile
from engine import (
    CancelOrder,
    OrderBook,
    OrderType,
    PlaceOrder,
    ReduceOrder,
    Side,
    TimeInForce,
    apply,
)

MID = 1_000_000  # ticks
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STOP_LIMIT, STOP_MARKET = OrderType.STOP_LIMIT, OrderType.STOP_MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


class Generator:
    """Produces the command mix against a scratch book that tracks what is resting."""

    def __init__(self, rng: random.Random, target: int, spread: int,
                 manage: bool = False) -> None:
        self.rng = rng
        self.manage = manage
        self.target = target
        self.spread = spread  # deep book: 1 GTC in 4 lands up to this many ticks away
        self.book = OrderBook("BENCH")
        self.seq = 0
        self.next_id = 0
        self.ids: list[str] = []  # ids that may still rest (pruned lazily)

    def _place(self, side, otype, tif, price, qty, post_only=False, stop=None,
               replaces=None) -> PlaceOrder:  # fmt: skip
        self.seq += 1
        self.next_id += 1
        oid = f"o{self.next_id}"
        cmd = PlaceOrder(
            self.seq, 1_700_000_000_000 + self.seq, oid, side, otype, tif,
            price, qty, "anonymous", post_only, stop_price=stop, replaces_order_id=replaces,
        )  # fmt: skip
        if tif is GTC:
            self.ids.append(oid)
        return cmd

    def prefill(self, levels_per_side: int, per_level: int) -> list[PlaceOrder]:
        """GTC orders on ``levels_per_side`` prices each side of MID, applied to the scratch
        book. Returns them so the timed book can be built identically."""
        rng = self.rng
        out = []
        for i in range(1, levels_per_side + 1):
            for _ in range(per_level):
                for side, price in ((BUY, MID - i), (SELL, MID + i)):
                    cmd = self._place(side, LIMIT, GTC, price, rng.randint(1, 10))
                    apply(self.book, cmd)
                    out.append(cmd)
        return out

    def _resting_id(self) -> str:
        rng, ids, orders = self.rng, self.ids, self.book.orders
        while ids:
            k = rng.randrange(len(ids))
            oid = ids[k]
            if oid in orders:
                return oid
            ids[k] = ids[-1]
            ids.pop()
        return "unknown"

    def _cancel(self) -> CancelOrder:
        oid = self._resting_id()
        self.seq += 1
        return CancelOrder(self.seq, 1_700_000_000_000 + self.seq, oid)

    def _manage(self, r: float, side: Side, opp: int, sign: int):
        """The order-management share of the ``manage`` mix (r in [0, 0.2))."""
        rng = self.rng
        if r < 0.10:  # reduce a resting order by a lot or two
            oid = self._resting_id()
            order = self.book.orders.get(oid)
            qty = max(1, order.remaining - rng.randint(1, 2)) if order else 1
            self.seq += 1
            return ReduceOrder(self.seq, 1_700_000_000_000 + self.seq, oid, qty)
        if r < 0.15:  # replace a resting order at a new price near the touch
            oid = self._resting_id()
            order = self.book.orders.get(oid)
            side = order.side if order else side
            opp = self.book.best_ask() if side is BUY else self.book.best_bid()
            sign = 1 if side is BUY else -1
            price = (opp or MID) - sign * rng.randint(0, 8)
            return self._place(side, LIMIT, GTC, price, rng.randint(1, 10), replaces=oid)
        last = self.book.last_price or opp
        stop = last + sign * rng.randint(1, 4)
        if rng.random() < 0.5:
            return self._place(side, STOP_LIMIT, GTC, stop + sign * 2, rng.randint(1, 5),
                               stop=stop)
        return self._place(side, STOP_MARKET, GTC, None, rng.randint(1, 5), stop=stop)

    def next(self):
        rng, book = self.rng, self.book
        r = rng.random()
        side = BUY if rng.random() < 0.5 else SELL
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None:
            bid = (ask or MID) - 1
        if ask is None:
            ask = bid + 1
        # the touch the order is measured against: the opposite best
        opp = ask if side is BUY else bid
        sign = 1 if side is BUY else -1
        size = len(book.orders)
        if self.manage:
            if r < 0.2:
                cmd = self._manage(r, side, opp, sign)
                apply(book, cmd)
                return cmd
            r = (r - 0.2) / 0.8  # the rest keeps today's proportions
        if r < 0.55:  # GTC limit near the touch; ~1 in 8 crosses by a tick or two
            offset = rng.randint(-1, 12)
            if self.spread and rng.random() < 0.25:
                offset = rng.randint(13, self.spread)
            price = opp - sign * offset
            cmd = self._place(side, LIMIT, GTC, price, rng.randint(1, 10))
        elif r < 0.65:  # IOC limit or MARKET; their size steers the book towards its target
            qmax = max(1, min(400, int(20 * (size / self.target) ** 8)))
            qty = rng.randint(1, qmax)
            if rng.random() < 0.5:
                cmd = self._place(side, LIMIT, IOC, opp + sign * rng.randint(0, 3), qty)
            else:
                cmd = self._place(side, MARKET, IOC, None, qty)
        elif r < 0.95:
            cmd = self._cancel()
        elif rng.random() < 0.5:  # FOK limit a few ticks through the touch
            cmd = self._place(side, LIMIT, FOK, opp + sign * rng.randint(0, 3), rng.randint(1, 30))
        else:  # postOnly near the touch: rests, or is rejected if it would cross
            cmd = self._place(
                side, LIMIT, GTC, opp - sign * rng.randint(-1, 6), rng.randint(1, 10), True
            )
        apply(book, cmd)
        return cmd


def build(rng: random.Random, n: int, target: int, levels_per_side: int, per_level: int,
          spread: int = 0, manage: bool = False):  # fmt: skip
    gen = Generator(rng, target, spread, manage)
    prefill = gen.prefill(levels_per_side, per_level)
    commands = [gen.next() for _ in range(n)]
    return prefill, commands, gen.book


def timed_run(prefill, commands):
    book = OrderBook("BENCH")
    for cmd in prefill:
        apply(book, cmd)
    times = [0] * len(commands)
    gc.collect()
    gc.freeze()
    gc.disable()
    clock = time.perf_counter_ns
    try:
        cpu = time.process_time_ns()
        start = clock()
        for i, cmd in enumerate(commands):
            t0 = clock()
            apply(book, cmd)
            times[i] = clock() - t0
        wall = clock() - start
        cpu = time.process_time_ns() - cpu
    finally:
        gc.enable()
        gc.unfreeze()
    return book, times, wall, cpu


def summarize(name, book: OrderBook, times: list[int], wall: int, cpu: int, check: OrderBook):
    n = len(times)
    st = sorted(times)
    total = sum(times)
    res = {
        "commands_per_second": round(n / (wall / 1e9)),
        "apply_only_commands_per_second": round(n / (total / 1e9)),
        "cpu_commands_per_second": round(n / (cpu / 1e9)),
        "mean_us": round(total / n / 1000, 3),
        "p50_us": round(percentile(st, 50) / 1000, 3),
        "p99_us": round(percentile(st, 99) / 1000, 3),
        "p999_us": round(percentile(st, 99.9) / 1000, 3),
        "max_us": round(st[-1] / 1000, 1),
        "resting_orders_end": len(book.orders),
        "levels_end": len(book.levels(BUY)) + len(book.levels(SELL)),
        "trades": book.trade_sequence,
    }
    assert book.snapshot() == check.snapshot(), "timed run diverged from generation run"
    print(
        f"{name:8s} {n:>9,} commands  {res['commands_per_second']:>9,} cmd/s (wall, incl. "
        f"timer)  {res['apply_only_commands_per_second']:>9,} cmd/s (apply only)  "
        f"mean {res['mean_us']} us  p50 {res['p50_us']} us  p99 {res['p99_us']} us  "
        f"p99.9 {res['p999_us']} us  max {res['max_us']} us"
    )
    print(
        f"{'':8s} {res['cpu_commands_per_second']:,} cmd/s by process CPU time (robust to "
        f"other load); end: {res['resting_orders_end']:,} resting orders on "
        f"{res['levels_end']:,} levels, {res['trades']:,} trades"
    )
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    n = args.commands
    rng = random.Random(42)
    print(
        f"engine bench: python {platform.python_version()} on {platform.machine()}, "
        f"{n:,} commands per run; gc frozen after setup and disabled while timing"
    )

    t = time.perf_counter()
    shallow_prefill, shallow_cmds, shallow_ref = build(rng, n, 1_000, 50, 10)
    deep_prefill, deep_cmds, deep_ref = build(rng, n, 100_000, 5_000, 10, spread=5_000)
    print(f"generated in {time.perf_counter() - t:.1f}s (not timed)")
    sys.stdout.flush()

    shallow = summarize("shallow", *timed_run(shallow_prefill, shallow_cmds), shallow_ref)
    del shallow_ref
    deep = summarize("deep", *timed_run(deep_prefill, deep_cmds), deep_ref)
    del deep_ref, deep_prefill, deep_cmds
    manage_prefill, manage_cmds, manage_ref = build(rng, n, 1_000, 50, 10, manage=True)
    manage = summarize("manage", *timed_run(manage_prefill, manage_cmds), manage_ref)
    ratio = sum_or(deep) / sum_or(shallow)
    print(f"deep/shallow time per command: {ratio:.2f}")
    out = {
        "commands_per_second": shallow["commands_per_second"],
        "p50_us": shallow["p50_us"],
        "p99_us": shallow["p99_us"],
        "deep_commands_per_second": deep["commands_per_second"],
        "deep_p50_us": deep["p50_us"],
        "deep_p99_us": deep["p99_us"],
        "deep_book_ratio": round(ratio, 3),
        "commands": n,
        "apply_only_commands_per_second": shallow["apply_only_commands_per_second"],
        "cpu_commands_per_second": shallow["cpu_commands_per_second"],
        "deep_cpu_commands_per_second": deep["cpu_commands_per_second"],
        "deep_cpu_ratio": round(
            shallow["cpu_commands_per_second"] / deep["cpu_commands_per_second"], 3
        ),
        "load_average_1m": load_average(),
        "deep_apply_only_commands_per_second": deep["apply_only_commands_per_second"],
        "p999_us": shallow["p999_us"],
        "deep_p999_us": deep["p999_us"],
        "manage_commands_per_second": manage["commands_per_second"],
        "manage_cpu_commands_per_second": manage["cpu_commands_per_second"],
        "manage_p50_us": manage["p50_us"],
        "manage_p99_us": manage["p99_us"],
        "shallow_resting_end": shallow["resting_orders_end"],
        "deep_resting_end": deep["resting_orders_end"],
        "gc": "frozen after setup, disabled during timed loop",
        "python": platform.python_version(),
    }
    print(json.dumps(out))


def load_average() -> float | None:
    """The 1-minute load average (Linux), to judge how noisy the figures are."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def sum_or(res: dict) -> float:
    """Time per command (µs) from a run summary."""
    return res["mean_us"]


if __name__ == "__main__":
    main()
