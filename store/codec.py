"""How orders, commands and book levels are written in Redis (strings).

Book level members: ``encode_level`` / ``decode_level`` (``"p:q:n"``).
Order hashes and journal entries:

| field    | meaning                         | field    | meaning                       |
|----------|---------------------------------|----------|-------------------------------|
| id       | order id                        | qty      | quantity in lots              |
| sym      | symbol                          | filled   | filled lots                   |
| acct     | account id                      | notional | sum of price*qty over fills   |
| side     | BUY / SELL                      | status   | Status                        |
| otype    | LIMIT / MARKET                  | reason   | Reason or ''                  |
| tif      | GTC / IOC / FOK                 | seq      | acceptance sequence           |
| post     | 1 / 0                           | ts       | accepted at (ms)              |
| stp      | SelfTradePrevention             | upd      | last change (ms)              |
| coid     | clientOrderId or ''             | rid      | request id (journal only)     |
| n        | the account's acceptance number | oqty     | quantity as placed (lots)     |
| price    | ticks, '' for MARKET            | stop     | stop price (ticks) or ''      |
| exp      | GTD expireTime (ms) or ''       | rep      | replaced order id or ''       |
| rank     | queue priority (engine.RANK_SHIFT; a triggered stop's differs)  |       |

Journal entries: ``op`` is place (the order fields), cancel / expire (``id``), reduce
(``id``, ``qty``: the new total) or cancel_all (``acct``); every entry has ``ts``.
"""

from __future__ import annotations

from engine.types import (
    RANK_SHIFT,
    CancelAll,
    CancelOrder,
    Command,
    ExpireOrder,
    Order,
    OrderType,
    PlaceOrder,
    Reason,
    ReduceOrder,
    SelfTradePrevention,
    Side,
    Status,
    TimeInForce,
)


def encode_level(price_ticks: int, qty_lots: int, count: int) -> str:
    """A book level's zset member ``"p:q:n"`` (score: the price in ticks): its price, total
    quantity in lots and order count. Whole, so a level's ZADD replaces it in one member."""
    return f"{price_ticks}:{qty_lots}:{count}"


def decode_level(member: str | bytes) -> tuple[int, int, int]:
    """``"p:q:n"`` -> (price ticks, quantity lots, order count)."""
    if isinstance(member, bytes):
        member = member.decode()
    price, qty, count = member.split(":")
    return int(price), int(qty), int(count)


def order_fields(order_id: str, account: str, request: dict, request_id: str) -> list[str]:
    """Flat field/value list of a new order (journal entry and order hash share it)."""
    price = request["price"]
    stop, exp = request.get("stop_price"), request.get("expire_time")
    return [
        "id", order_id, "sym", request["symbol"], "acct", account,
        "side", request["side"].value, "otype", request["order_type"].value,
        "tif", request["time_in_force"].value, "post", "1" if request["post_only"] else "0",
        "stp", request["self_trade_prevention"].value, "coid", request["client_order_id"] or "",
        "price", "" if price is None else str(price), "qty", str(request["quantity"]),
        "oqty", str(request["quantity"]), "stop", "" if stop is None else str(stop),
        "exp", "" if exp is None else str(exp), "rep", request.get("replaces_order_id") or "",
        "rid", request_id,
    ]


def order_values(account: str, request: dict, request_id: str) -> list[str]:
    """What accept.lua takes after its first four arguments: the values of
    ``order_fields`` without the names and without what it has already (the id, the
    clientOrderId, oqty = qty); the script rebuilds ``order_fields``' list from them.
    Figure: 36 -> 17 arguments per EVALSHA, the accept's pack + send + Redis parse; CPU per
    order in ``flock /tmp/heavy.lock .venv/bin/python -m bench.load --mode both --seconds
    10``, README "Cost per order"."""
    price = request["price"]
    stop, exp = request.get("stop_price"), request.get("expire_time")
    return [
        request["symbol"], account, request["side"].value, request["order_type"].value,
        request["time_in_force"].value, "1" if request["post_only"] else "0",
        request["self_trade_prevention"].value, "" if price is None else str(price),
        str(request["quantity"]), "" if stop is None else str(stop),
        "" if exp is None else str(exp), request.get("replaces_order_id") or "", request_id,
    ]


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


def _members(enum_cls) -> dict:
    return {e.value: e for e in enum_cls}


# The matcher turns every journal entry into a command: four enum lookups by value, a dict
# lookup each instead of EnumType.__call__ (1.16 -> ~0.2 us per entry; anything not in the
# table still goes through the enum, which raises as before). Micro-loop of
# command_from_entry; the matcher's CPU per order in ``bench.load --mode batch`` (README).
_SIDE, _ORDER_TYPE = _members(Side), _members(OrderType)
_TIF, _STP = _members(TimeInForce), _members(SelfTradePrevention)


def _member(table: dict, enum_cls, value):
    member = table.get(value)
    return enum_cls(value) if member is None else member


def command_from_entry(sequence: int, f: dict[str, str]) -> Command:
    """A journal entry (stream fields) as an engine command."""
    op = f["op"]
    if op == "cancel":
        return CancelOrder(sequence=sequence, timestamp=int(f["ts"]), order_id=f["id"])
    if op == "reduce":
        return ReduceOrder(sequence, int(f["ts"]), f["id"], int(f["qty"]))
    if op == "expire":
        return ExpireOrder(sequence, int(f["ts"]), f["id"])
    if op == "cancel_all":
        return CancelAll(sequence, int(f["ts"]), f["acct"])
    return PlaceOrder(
        sequence=sequence,
        timestamp=int(f["ts"]),
        order_id=f["id"],
        side=_member(_SIDE, Side, f["side"]),
        order_type=_member(_ORDER_TYPE, OrderType, f["otype"]),
        time_in_force=_member(_TIF, TimeInForce, f["tif"]),
        price=int(f["price"]) if f["price"] else None,
        quantity=int(f["qty"]),
        account_id=f["acct"],
        post_only=f["post"] == "1",
        self_trade_prevention=_member(_STP, SelfTradePrevention, f["stp"]),
        client_order_id=f["coid"] or None,
        stop_price=_int_or_none(f.get("stop")),
        expire_time=_int_or_none(f.get("exp")),
        replaces_order_id=f.get("rep") or None,
    )


def order_from_hash(h: dict[str, str]) -> Order:
    """A stored order as an engine ``Order`` (used to rebuild the books)."""
    return Order(
        id=h["id"],
        side=Side(h["side"]),
        order_type=OrderType(h["otype"]),
        time_in_force=TimeInForce(h["tif"]),
        price=int(h["price"]) if h["price"] else None,
        quantity=int(h["qty"]),
        sequence=int(h["seq"]),
        timestamp=int(h["ts"]),
        account_id=h["acct"],
        post_only=h["post"] == "1",
        self_trade_prevention=SelfTradePrevention(h["stp"]),
        client_order_id=h["coid"] or None,
        stop_price=_int_or_none(h.get("stop")),
        expire_time=_int_or_none(h.get("exp")),
        replaces_order_id=h.get("rep") or None,
        rank=int(h.get("rank") or 0) or int(h["seq"]) << RANK_SHIFT,
        filled=int(h["filled"]),
        notional=int(h["notional"]),
        status=Status(h["status"]),
        reason=Reason(h["reason"]) if h["reason"] else None,
        updated_at=int(h["upd"]),
    )


def same_request(h: dict[str, str], request: dict) -> bool:
    """Is ``request`` (a loaded place body) the order stored in ``h`` again? A client's
    retry under the same clientOrderId must be; anything else is a reuse (409)."""

    def text(value) -> str:
        return "" if value is None else str(getattr(value, "value", value))

    stored_quantity = h.get("oqty") or h["qty"]  # oqty: as placed (a reduce lowers qty)
    return (h["sym"] == request["symbol"] and h["side"] == text(request["side"])
            and h["otype"] == text(request["order_type"])
            and h["tif"] == text(request["time_in_force"])
            and h["post"] == ("1" if request["post_only"] else "0")
            and h["stp"] == text(request["self_trade_prevention"])
            and h["price"] == text(request["price"])
            and stored_quantity == str(request["quantity"])
            and h.get("stop", "") == text(request.get("stop_price"))
            and h.get("exp", "") == text(request.get("expire_time"))
            and h.get("rep", "") == text(request.get("replaces_order_id")))
