"""Every bench module imports, and the names benches take from each other exist: a bench
runs only by hand (make load, bench-ws, ...), so a rename elsewhere broke
``bench.ws_bench --place`` without any test noticing."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import bench


def test_bench_modules_import_and_their_imports_resolve():
    for info in pkgutil.iter_modules(bench.__path__):
        module = importlib.import_module(f"bench.{info.name}")
        tree = ast.parse(Path(module.__file__).read_text())
        for node in ast.walk(tree):  # the imports inside functions too
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] in ("bench", "localrun", "store", "app"):
                source = importlib.import_module(node.module)
                for alias in node.names:
                    submodule = hasattr(source, "__path__") and importlib.util.find_spec(
                        f"{node.module}.{alias.name}")
                    assert hasattr(source, alias.name) or submodule, (
                        f"bench/{info.name}.py: {node.module} has no {alias.name}")
