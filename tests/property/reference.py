"""A deliberately simple reference model of the matching rules, for property tests.

One flat list of resting orders, re-sorted by (price, rank) whenever it is needed (rank:
``(sequence, 0)``, or ``(trigger sequence, k)`` for the k-th stop a command triggered);
level totals recomputed by summing; one flat list of untriggered stops, scanned after
every taker. Slow and obviously correct; shares no code with ``engine.book`` /
``engine.matcher``. Events are plain tuples (see ``render``).
"""

from __future__ import annotations

from dataclasses import dataclass

from localrun.replay import render  # noqa: F401  (the engine's events as plain tuples)


@dataclass
class RefOrder:
    id: str
    side: str
    order_type: str
    tif: str
    price: int | None
    quantity: int
    sequence: int
    account: str
    post_only: bool
    stp: str
    stop_price: int | None = None
    filled: int = 0
    notional: int = 0
    status: str = "PENDING"
    rank: tuple = ()

    def __post_init__(self) -> None:
        self.rank = self.rank or (self.sequence, 0)

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


class ReferenceBook:
    def __init__(self) -> None:
        self.resting: list[RefOrder] = []
        self.stops: list[RefOrder] = []
        self.trade_seq = 0
        self.last_price: int | None = None

    # -------------------------------------------------------------- helpers

    def side_orders(self, side: str) -> list[RefOrder]:
        """Resting orders of one side, best first, then by sequence."""
        if side == "BUY":
            key = lambda o: (-o.price, o.rank)  # noqa: E731
        else:
            key = lambda o: (o.price, o.rank)  # noqa: E731
        return sorted((o for o in self.resting if o.side == side), key=key)

    def levels(self, side: str) -> list[tuple[int, int, int]]:
        out: list[tuple[int, int, int]] = []
        for o in self.side_orders(side):
            if out and out[-1][0] == o.price:
                p, q, n = out[-1]
                out[-1] = (p, q + o.remaining, n + 1)
            else:
                out.append((o.price, o.remaining, 1))
        return out

    def level(self, side: str, price: int) -> tuple[int, int]:
        mine = [o for o in self.resting if o.side == side and o.price == price]
        return (sum(o.remaining for o in mine), len(mine))

    # -------------------------------------------------------------- commands

    def find(self, order_id: str) -> RefOrder | None:
        for o in self.resting + self.stops:
            if o.id == order_id:
                return o
        return None

    def cancel(self, order_id: str, ts: int, reason: str = "USER_CANCELLED") -> list[tuple]:
        for o in self.stops:
            if o.id == order_id:
                self.stops.remove(o)
                o.status = "CANCELLED"
                return [("order", o.id, "CANCELLED", reason, o.filled, o.notional, ts,
                         o.quantity)]
        for o in self.resting:
            if o.id == order_id:
                self.resting.remove(o)
                o.status = "CANCELLED"
                q, n = self.level(o.side, o.price)
                return [
                    ("order", o.id, "CANCELLED", reason, o.filled, o.notional, ts, o.quantity),
                    ("level", o.side, o.price, q, n),
                ]
        return []

    def reduce(self, order_id: str, quantity: int, ts: int) -> list[tuple]:
        o = self.find(order_id)
        if o is None or quantity >= o.quantity:
            return []
        if quantity <= o.filled:
            return self.cancel(order_id, ts)
        o.quantity = quantity
        out = [("order", o.id, o.status, None, o.filled, o.notional, ts, o.quantity)]
        if o in self.resting:
            out.append(("level", o.side, o.price, *self.level(o.side, o.price)))
        return out

    def cancel_all(self, account: str, ts: int) -> list[tuple]:
        mine = sorted((o for o in self.resting + self.stops if o.account == account),
                      key=lambda o: o.sequence)
        out: list[tuple] = []
        for o in mine:
            out += self.cancel(o.id, ts)
        return out

    def submit(self, o: RefOrder, ts: int, replaces: str | None = None) -> list[tuple]:
        """A place command: replace, stop or plain order, then the stops it triggers."""
        out: list[tuple] = []
        if replaces is not None:
            if self.find(replaces) is None:
                o.status = "REJECTED"
                return [("order", o.id, "REJECTED", "ORIGINAL_NOT_OPEN", 0, 0, ts, o.quantity)]
            out += self.cancel(replaces, ts)
        if o.order_type in ("STOP_LIMIT", "STOP_MARKET"):
            last = self.last_price
            if last is not None and (last >= o.stop_price if o.side == "BUY"
                                     else last <= o.stop_price):
                o.status = "REJECTED"
                out.append(("order", o.id, "REJECTED", "STOP_WOULD_TRIGGER", 0, 0, ts,
                            o.quantity))
                return out
            o.status = "UNTRIGGERED"
            self.stops.append(o)
            out.append(("order", o.id, "UNTRIGGERED", None, 0, 0, ts, o.quantity))
            return out
        taker_events = self.place(o, ts)
        out += taker_events
        waiting: list[RefOrder] = []
        k = 0
        while True:
            prices = [e[2] for e in taker_events if e[0] == "trade"]
            if prices:
                hit = [s for s in self.stops
                       if (s.side == "BUY" and max(prices) >= s.stop_price)
                       or (s.side == "SELL" and min(prices) <= s.stop_price)]
                for s in hit:
                    self.stops.remove(s)
                waiting += hit
            if not waiting:
                return out
            nxt = min(waiting, key=lambda s: s.sequence)
            waiting.remove(nxt)
            k += 1
            nxt.rank = (o.sequence, k)
            if nxt.order_type == "STOP_LIMIT":
                taker_events = self.place(nxt, ts, "LIMIT", "GTC")
            else:
                taker_events = self.place(nxt, ts, "MARKET", "IOC")
            out += taker_events

    def place(self, o: RefOrder, ts: int, kind: str | None = None,
              tif: str | None = None) -> list[tuple]:
        """One taker: ``kind``/``tif`` override the order's (a triggered stop; GTD is GTC)."""
        kind = kind or o.order_type
        tif = tif or ("GTC" if o.tif == "GTD" else o.tif)
        out: list[tuple] = []
        other = "SELL" if o.side == "BUY" else "BUY"
        opposite = self.side_orders(other)

        def crosses(maker: RefOrder) -> bool:
            if kind == "MARKET":
                return True
            return maker.price <= o.price if o.side == "BUY" else maker.price >= o.price

        crossing = [m for m in opposite if crosses(m)]
        stp_active = o.stp != "NONE" and o.account != "anonymous"

        def same_account(m: RefOrder) -> bool:
            return stp_active and m.account == o.account

        def update(x: RefOrder, reason=None):
            return ("order", x.id, x.status, reason, x.filled, x.notional, ts, x.quantity)

        if o.post_only and crossing:
            o.status = "REJECTED"
            return [update(o, "POST_ONLY_WOULD_CROSS")]

        if tif == "FOK":
            available = 0
            for m in crossing:
                if same_account(m):
                    if o.stp == "CANCEL_MAKER":
                        continue
                    break
                available += m.remaining
            if available < o.quantity:
                o.status = "CANCELLED"
                return [update(o, "FOK_NOT_FILLABLE")]

        touched: list[tuple[str, int]] = []

        def touch(m: RefOrder) -> None:
            if (m.side, m.price) not in touched:
                touched.append((m.side, m.price))

        taker_cancelled_by_stp = False
        for m in crossing:
            if o.remaining == 0:
                break
            if same_account(m):
                if o.stp in ("CANCEL_MAKER", "CANCEL_BOTH"):
                    self.resting.remove(m)
                    m.status = "CANCELLED"
                    touch(m)
                    out.append(update(m, "SELF_TRADE_PREVENTED"))
                if o.stp in ("CANCEL_TAKER", "CANCEL_BOTH"):
                    taker_cancelled_by_stp = True
                    break
                continue
            qty = min(o.remaining, m.remaining)
            self.trade_seq += 1
            out.append(("trade", self.trade_seq, m.price, qty, m.id, o.id, o.side, ts))
            self.last_price = m.price
            m.filled += qty
            m.notional += qty * m.price
            o.filled += qty
            o.notional += qty * m.price
            m.status = "FILLED" if m.remaining == 0 else "PARTIAL"
            o.status = "FILLED" if o.remaining == 0 else "PARTIAL"
            if m.remaining == 0:
                self.resting.remove(m)
            touch(m)
            out.append(update(m))
            out.append(update(o))

        if o.remaining > 0:
            if taker_cancelled_by_stp:
                o.status = "CANCELLED"
                out.append(update(o, "SELF_TRADE_PREVENTED"))
            elif tif == "GTC" and kind == "LIMIT":
                if o.filled == 0:
                    o.status = "OPEN"
                    out.append(update(o))
                self.resting.append(o)
                touch(o)
            else:
                reason = "NO_LIQUIDITY" if o.filled == 0 and not opposite else "IOC_REMAINDER"
                o.status = "CANCELLED"
                out.append(update(o, reason))

        for side, price in touched:
            q, n = self.level(side, price)
            out.append(("level", side, price, q, n))
        return out
