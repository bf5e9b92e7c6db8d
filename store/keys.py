"""Every Redis key of the service, in one place.

Per-symbol keys carry the symbol as a Redis Cluster hash tag (``{BTC-USD}``) so
one symbol's journal, book, cursor and trades live in one slot and can be
committed in one MULTI/EXEC. Order and account keys are global.

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
| order:{id}                   | hash   | one order (ints: ticks, lots)                          |
| order:{id}:fills             | list   | trade sequences the order took part in                 |
| acct:{A}:n                   | string | the account's acceptance counter (INCR)                |
| acct:{A}:orders              | zset   | the account's order ids, score = acceptance number n   |
| acct:{A}:open                | zset   | the account's PENDING/OPEN/PARTIAL order ids, score n  |
| acct:{A}:coid                | hash   | clientOrderId -> order id                              |
| events:{S}                   | shard  | sharded pub/sub (SPUBLISH): commits, accepted orders  |
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


def order(order_id: str) -> str:
    return f"{PREFIX}order:{order_id}"


def order_fills(order_id: str) -> str:
    return f"{PREFIX}order:{order_id}:fills"


def account_counter(account: str) -> str:
    return f"{PREFIX}acct:{account}:n"


def account_orders(account: str) -> str:
    return f"{PREFIX}acct:{account}:orders"


def account_open(account: str) -> str:
    return f"{PREFIX}acct:{account}:open"


def account_client_ids(account: str) -> str:
    return f"{PREFIX}acct:{account}:coid"


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
