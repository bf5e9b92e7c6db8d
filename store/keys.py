"""Every Redis key of the service, in one place.

Every key of a symbol carries the symbol as a Redis Cluster hash tag (``{BTC-USD}``):
its journal, book, cursor, trades, its orders and their fills, the account-per-symbol
indexes and its events channel all live in one slot, so each accept, cancel and commit
is one single-slot script call. An order id names its symbol (``order_symbol``), so an
order's keys are found from its id alone. Nothing is global.

| key                          | type   | what                                                   |
|------------------------------|--------|--------------------------------------------------------|
| sym:{S}:seq                  | string | last accepted command sequence (INCR)                  |
| sym:{S}:journal              | stream | every accepted command, entry id "<seq>-1"             |
| sym:{S}:wake                 | string | set while a matching task is on its way (one per burst) |
| sym:{S}:applied              | string | last command sequence the matcher committed            |
| sym:{S}:owner                | string | fencing lease: token of the worker that may commit      |
| sym:{S}:resting              | zset   | resting order ids, score = sequence (rebuild order)    |
| sym:{S}:book:BUY / :SELL     | zset   | price levels, score = price ticks, member "p:qty:count" |
| sym:{S}:trades               | stream | every trade, entry id "<trade seq>-1"                  |
| sym:{S}:tradeseq             | string | last trade sequence                                    |
| sym:{S}:last                 | string | last trade price (ticks)                               |
| sym:{S}:volume               | hash   | minute -> traded lots, for volume24h                   |
| sym:{S}:candles:{I}          | zset   | candles of interval I, score = bucket start (candles.py) |
| sym:{S}:heartbeat            | string | ms time of the matcher's last sign of life             |
| sym:{S}:gtd                  | zset   | GTD order ids, score = expireTime (ms): the expiry sweep |
| sym:{S}:final                | zset   | final order ids not yet archived, score = updatedAt ms |
| sym:{S}:archived             | string | set once anything of the symbol moved to the archive   |
| sym:{S}:archiver             | string | lease token of the archive mover working on the symbol |
| sym:{S}:checkpoint           | string | newest book checkpoint (JSON snapshot at a sequence)   |
| sym:{S}:o:{token}            | hash   | one order (ints: ticks, lots); S, token from its id    |
| sym:{S}:o:{token}:fills      | list   | trade sequences the order took part in                 |
| sym:{S}:a:{A}:n              | string | the account's last acceptance number n on S (below)    |
| sym:{S}:a:{A}:orders         | zset   | the account's order ids on S, score = n                |
| sym:{S}:a:{A}:open           | zset   | its PENDING/UNTRIGGERED/OPEN/PARTIAL ids on S, score n |
| sym:{S}:a:{A}:coid           | hash   | clientOrderId -> order id (unique per account, symbol) |
| events:{S}                   | shard  | sharded pub/sub (SPUBLISH): commits, accepted orders  |

The acceptance number ``n`` (the order hash's ``n`` and its index score) orders an
account's orders across symbols: ``max(accept ms * 1000, previous n + 1)`` of the
(account, symbol), set by accept.lua with Redis's clock. Within a symbol it follows
acceptance exactly (strictly increasing even if the clock steps back); across symbols it
is the acceptance time in ms, ties broken by order id. ``GET /api/orders`` without a
symbol merges the per-symbol indexes newest first by ``(n, id)``, and its cursor is the
last ``(n, id)`` returned. Exact as a zset score (a double) until the year 2255.
"""

from __future__ import annotations

PREFIX = "me:"  # namespace every key so a shared Redis stays tidy


def _sym(symbol: str, name: str) -> str:
    return f"{PREFIX}sym:{{{symbol}}}:{name}"


def seq(symbol: str) -> str:
    return _sym(symbol, "seq")


def journal(symbol: str) -> str:
    return _sym(symbol, "journal")


def wake(symbol: str) -> str:
    return _sym(symbol, "wake")


def applied(symbol: str) -> str:
    return _sym(symbol, "applied")


def owner(symbol: str) -> str:
    return _sym(symbol, "owner")


def resting(symbol: str) -> str:
    return _sym(symbol, "resting")


def book(symbol: str, side: str) -> str:
    return _sym(symbol, f"book:{side}")


def trades(symbol: str) -> str:
    return _sym(symbol, "trades")


def trade_seq(symbol: str) -> str:
    return _sym(symbol, "tradeseq")


def last_price(symbol: str) -> str:
    return _sym(symbol, "last")


def volume(symbol: str) -> str:
    return _sym(symbol, "volume")


def candles(symbol: str, interval: str) -> str:
    return _sym(symbol, f"candles:{interval}")


def heartbeat(symbol: str) -> str:
    return _sym(symbol, "heartbeat")


def gtd(symbol: str) -> str:
    return _sym(symbol, "gtd")


def final_orders(symbol: str) -> str:
    return _sym(symbol, "final")


def archived(symbol: str) -> str:
    return _sym(symbol, "archived")


def archiver(symbol: str) -> str:
    return _sym(symbol, "archiver")


def checkpoint(symbol: str) -> str:
    return _sym(symbol, "checkpoint")


ORDER_ID_PREFIX = "ord_"
TOKEN_LENGTH = 16  # secrets.token_urlsafe(12): 96 random bits, as before ids named a symbol


def new_order_id(symbol: str, token: str) -> str:
    """``ord_<symbol>_<16-char token>``: the token has a fixed length, so the symbol is
    what lies between the prefix and it, whatever the characters of either."""
    return f"{ORDER_ID_PREFIX}{symbol}_{token}"


def _parts(order_id) -> tuple[str, str] | None:
    if isinstance(order_id, bytes):  # read back from a client that does not decode
        order_id = order_id.decode()
    if (not isinstance(order_id, str) or not order_id.startswith(ORDER_ID_PREFIX)
            or len(order_id) < len(ORDER_ID_PREFIX) + TOKEN_LENGTH + 2):
        return None
    symbol, sep = order_id[len(ORDER_ID_PREFIX):-TOKEN_LENGTH - 1], order_id[-TOKEN_LENGTH - 1]
    if sep != "_" or not symbol or "{" in symbol or "}" in symbol:
        return None
    return symbol, order_id[-TOKEN_LENGTH:]


def order_symbol(order_id: str) -> str | None:
    """The symbol an order id names, or None for a string that is no order id."""
    parts = _parts(order_id)
    return parts[0] if parts else None


class NotAnOrderId(ValueError):
    """Raised by the order keys for a string that names no symbol (a 404 upstream)."""


def _order(order_id: str | bytes) -> str:
    # The key holds the id's token only: the symbol is in the tag already (bench.memory).
    parts = _parts(order_id)
    if parts is None:
        raise NotAnOrderId(order_id)
    return _sym(parts[0], f"o:{parts[1]}")


def order(order_id: str | bytes) -> str:
    return _order(order_id)


def order_fills(order_id: str | bytes) -> str:
    return _order(order_id) + ":fills"


def account_counter(account: str, symbol: str) -> str:
    return _sym(symbol, f"a:{account}:n")


def account_orders(account: str, symbol: str) -> str:
    return _sym(symbol, f"a:{account}:orders")


def account_open(account: str, symbol: str) -> str:
    return _sym(symbol, f"a:{account}:open")


def account_client_ids(account: str, symbol: str) -> str:
    return _sym(symbol, f"a:{account}:coid")


def events_channel(symbol: str) -> str:
    return f"{PREFIX}events:{{{symbol}}}"


def symbol_of_channel(channel: str) -> str:
    """``me:events:{BTC-USD}`` -> ``BTC-USD``."""
    return channel[channel.index("{") + 1 : channel.rindex("}")]


def stream_id(sequence: int) -> str:
    """Journal and trade streams use the sequence as the entry id: ``<seq>-1``."""
    return f"{sequence}-1"


def sequence_of(stream_entry_id: bytes | str) -> int:
    if isinstance(stream_entry_id, bytes):
        stream_entry_id = stream_entry_id.decode()
    return int(stream_entry_id.split("-", 1)[0])
