"""Soak: many crash rounds against real processes, then the tally.

``python -m bench.soak [--rounds 50] [--kinds worker_kill,fault_point,...] [--seed N]``
(``make soak``). Starts its own redis-server (appendonly yes, appendfsync everysec),
gunicorn and matching worker in a temp dir (never 6379), runs the rounds of
localrun/crash.py in a shuffled mix of the crash kinds, and prints per kind:
rounds, orders, lost, doubled, mismatches (store.verify differences) and recovery time
(crash -> first new commit) p50/max. The last line is one JSON object. Exit 1 if
anything was lost, doubled or mismatched.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import percentile
from localrun.crash import KINDS, ROUNDS, Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    plan = [kinds[i % len(kinds)] for i in range(args.rounds)]
    rng.shuffle(plan)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"soak: {args.rounds} rounds of {kinds}, seed {seed}, dir {tmp}", flush=True)
    cluster = Cluster(tmp).start()
    tally = {k: {"rounds": 0, "orders": 0, "lost": 0, "doubled": 0, "mismatches": 0,
                 "recovery": [], "problems": []} for k in kinds}
    started = time.monotonic()
    try:
        for i, kind in enumerate(plan, 1):
            t0 = time.monotonic()
            try:
                res = ROUNDS[kind](cluster, rng)
            except Exception as exc:  # a round that could not finish is a failure too
                tally[kind]["rounds"] += 1
                tally[kind]["problems"].append(f"round {i}: {type(exc).__name__}: {exc}")
                print(f"[{i}/{len(plan)}] {kind}: ERROR {exc}", flush=True)
                continue
            t = tally[kind]
            t["rounds"] += 1
            for name in ("orders", "lost", "doubled", "mismatches"):
                t[name] += getattr(res, name)
            t["recovery"].extend(res.recovery)
            t["problems"].extend(f"round {i}: {d}" for d in res.details)
            print(f"[{i}/{len(plan)}] {kind}: orders={res.orders} lost={res.lost} "
                  f"doubled={res.doubled} mismatches={res.mismatches} recovery="
                  f"{[round(x, 2) for x in res.recovery]} {res.notes or ''} "
                  f"({time.monotonic() - t0:.1f}s)", flush=True)
    finally:
        cluster.stop()
    print(f"\n{'kind':<14}{'rounds':>7}{'orders':>8}{'lost':>6}{'doubled':>8}"
          f"{'mismatch':>9}{'rec p50 s':>10}{'rec max s':>10}")
    summary: dict = {"seed": seed, "seconds": round(time.monotonic() - started, 1),
                     "kinds": {}}
    for kind, t in tally.items():
        rec = [round(s, 3) for s in t["recovery"]]
        row = {"rounds": t["rounds"], "orders": t["orders"], "lost": t["lost"],
               "doubled": t["doubled"], "mismatches": t["mismatches"],
               "recovery_p50_s": percentile(rec, 50),
               "recovery_max_s": max(rec, default=None),
               "recovery_p90_s": percentile(rec, 90), "problems": len(t["problems"])}
        summary["kinds"][kind] = row
        print(f"{kind:<14}{row['rounds']:>7}{row['orders']:>8}{row['lost']:>6}"
              f"{row['doubled']:>8}{row['mismatches']:>9}{str(row['recovery_p50_s']):>10}"
              f"{str(row['recovery_max_s']):>10}")
        for p in t["problems"][:10]:
            print(f"  {kind}: {p}")
    failed = any(r["lost"] or r["doubled"] or r["mismatches"] or r["problems"]
                 for r in summary["kinds"].values())
    summary["ok"] = not failed
    if not args.keep and not failed:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
