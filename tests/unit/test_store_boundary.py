"""``store/`` is the only package that knows a Redis key or sends a Redis command.

Like the engine's no-I/O test, this reads the source: outside ``store/`` no module
imports ``store.keys``, and none calls a Redis command method (redis-py's own names:
``get``, ``hgetall``, ``pipeline``, ``evalsha``, ...) on something that is a Redis client
by its name (``r``, ``redis``, ``client``, ``pipe``, ``get_redis()``, ...). Making a
client (``redis.Redis.from_url``) and catching ``redis.RedisError`` are allowed: the
client factory and the error mapping live outside the store.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import redis
from redis.commands.core import CoreCommands

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("app", "workers", "archive", "schemas", "engine")

# redis-py's command methods (and the pipeline/script/pub-sub entry points).
COMMANDS = {name for name, _ in inspect.getmembers(CoreCommands, inspect.isfunction)
            if not name.startswith("_")} | {"pipeline", "register_script", "pubsub",
                                             "execute_command", "transaction"}
# A receiver that is a Redis client by its name: r, rs, redis, client, pipe, *_redis, ...
CLIENT_NAME = re.compile(r"^(_?r|rs|redis|_?redis_client|client|pipe|pipeline|_?store)$"
                         r"|redis")


def _files():
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(), filename=rel)


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):  # get_redis().get(...)
        return _receiver_name(node.func)
    return None


def _violations(rel: str, tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "store" and any(
                a.name == "keys" for a in node.names):
            out.append(f"{rel}:{node.lineno} imports store.keys")
        elif isinstance(node, ast.ImportFrom) and node.module == "store.keys":
            out.append(f"{rel}:{node.lineno} imports from store.keys")
        elif isinstance(node, ast.Import) and any(a.name == "store.keys" for a in node.names):
            out.append(f"{rel}:{node.lineno} imports store.keys")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in COMMANDS):
            name = _receiver_name(node.func.value)
            if name is not None and CLIENT_NAME.search(name) and name != "redis_url":
                out.append(f"{rel}:{node.lineno} calls {name}.{node.func.attr}()")
    return out


def test_only_store_knows_keys_and_sends_commands():
    found = [v for rel, tree in _files() for v in _violations(rel, tree)]
    assert found == []


def test_the_check_sees_what_it_forbids():
    # The detector itself, on code that breaks each rule (so the test above can fail).
    bad = ast.parse("from store import keys\nimport store.keys\n"
                    "def f(r):\n    r.hget('k', 'f')\n    get_redis().zadd('k', {})\n"
                    "    self.redis.pipeline()\n")
    assert len(_violations("x.py", bad)) == 5
    fine = ast.parse("def f(d, r):\n    d.get('k')\n    redis.Redis.from_url('u')\n"
                     "    read.orderbook(r, m)\n")
    assert _violations("x.py", fine) == []
    assert {"hget", "zadd", "evalsha", "spublish", "pipeline"} <= COMMANDS
    assert redis.Redis.from_url.__name__ not in COMMANDS
