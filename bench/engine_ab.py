"""Interleaved A/B of two copies of the matching core on the ``make bench`` mix.

Run (under the heavy lock): ``.venv/bin/python -m bench.engine_ab A_DIR [B_DIR]``, e.g.
with the engine before order management as A::

    mkdir -p /tmp/engine-old && git archive e93d158^1 engine | tar -x -C /tmp/engine-old
    flock /tmp/heavy.lock .venv/bin/python -m bench.engine_ab /tmp/engine-old/engine

Each directory is loaded as its own package (``engine_a``, ``engine_b``; B defaults to
this checkout's ``engine/``), so both run in one process on the same interpreter state.
The commands come from ``bench.engine_bench``'s generator (seed 42, shallow then deep, as
``make bench`` does) and are rebuilt for each engine from its own command classes and
enums (an older engine lacks the newer optional fields; the mix leaves them at their
defaults). Rounds alternate A, B, A, B; each builds a fresh book from the prefill, then
times the whole command list with ``time.process_time_ns`` (CPU time: robust to other
load), GC frozen and disabled as in ``make bench``. Both engines must end every round on
the same book (checked). Printed: the median (and min/max) commands/s per engine and run,
and B against A in percent; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import gc
import importlib.util
import json
import random
import statistics
import sys
import time
from pathlib import Path

from bench.engine_bench import build, load_average

ROOT = Path(__file__).resolve().parent.parent


def load_engine(directory: str, name: str):
    """Import the package in ``directory`` under ``name`` (its own modules, classes)."""
    path = Path(directory).resolve()
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py", submodule_search_locations=[str(path)]
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def convert(commands, eng) -> list:
    """The same commands built from ``eng``'s classes and enums (fields it lacks must be
    at their defaults)."""
    out = []
    for cmd in commands:
        cls = getattr(eng, cmd.__class__.__name__)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {}
        for f in dataclasses.fields(cmd):
            v = getattr(cmd, f.name)
            if f.name not in names:
                if v != f.default:
                    raise ValueError(f"{eng.__name__} has no field {f.name} (got {v!r})")
                continue
            if isinstance(v, enum.Enum):
                v = getattr(eng, v.__class__.__name__)(v.value)
            kw[f.name] = v
        out.append(cls(**kw))
    return out


def run_once(eng, prefill, commands) -> tuple[float, tuple]:
    """One timed pass: commands/s by CPU time, and a digest of the final book."""
    book = eng.OrderBook("BENCH")
    apply = eng.apply
    for cmd in prefill:
        apply(book, cmd)
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        t0 = time.process_time_ns()
        for cmd in commands:
            apply(book, cmd)
        cpu = time.process_time_ns() - t0
    finally:
        gc.enable()
        gc.unfreeze()
    digest = (
        book.last_sequence,
        book.trade_sequence,
        tuple((o.id, o.quantity - o.filled) for o in book.iter_orders("BUY")),
        tuple((o.id, o.quantity - o.filled) for o in book.iter_orders("SELL")),
    )
    return len(commands) / (cpu / 1e9), digest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="engine package directory A (e.g. the old engine)")
    ap.add_argument("b", nargs="?", default=str(ROOT / "engine"), help="engine B (./engine)")
    ap.add_argument("--commands", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--runs", default="deep,shallow", help="comma list of deep, shallow")
    args = ap.parse_args(argv)
    engines = {"A": load_engine(args.a, "engine_a"), "B": load_engine(args.b, "engine_b")}
    n = args.commands
    rng = random.Random(42)
    t = time.perf_counter()
    mixes = {}
    mixes["shallow"] = build(rng, n, 1_000, 50, 10)[:2]
    mixes["deep"] = build(rng, n, 100_000, 5_000, 10, spread=5_000)[:2]
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    print(
        f"engine A/B: A={args.a} B={args.b}; {n:,} commands, {args.rounds} rounds A,B,A,B "
        f"per run; generated in {time.perf_counter() - t:.1f}s; load {load_average()}"
    )
    out = {"commands": n, "rounds": args.rounds, "load_average_1m_start": load_average()}
    for run in runs:
        prefill, commands = mixes[run]
        per = {k: (convert(prefill, e), convert(commands, e)) for k, e in engines.items()}
        rates: dict[str, list[float]] = {"A": [], "B": []}
        for _ in range(args.rounds):
            digests = []
            for k in ("A", "B"):
                rate, digest = run_once(engines[k], *per[k])
                rates[k].append(rate)
                digests.append(digest)
            assert digests[0] == digests[1], f"{run}: the engines ended on different books"
        med = {k: statistics.median(v) for k, v in rates.items()}
        delta = 100 * (med["B"] / med["A"] - 1)
        print(
            f"{run:8s} A {med['A']:>9,.0f} cmd/s (min {min(rates['A']):,.0f} max "
            f"{max(rates['A']):,.0f})  B {med['B']:>9,.0f} cmd/s (min {min(rates['B']):,.0f} "
            f"max {max(rates['B']):,.0f})  B vs A {delta:+.1f} %"
        )
        sys.stdout.flush()
        out[run] = {
            "a_cpu_commands_per_second": round(med["A"]),
            "b_cpu_commands_per_second": round(med["B"]),
            "b_vs_a_percent": round(delta, 1),
        }
        del per
    out["load_average_1m_end"] = load_average()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
