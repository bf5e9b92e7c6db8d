"""What every bench measures the same way: percentiles of a sample, and the CPU time and
resident memory of a process tree read from /proc (Linux)."""

from __future__ import annotations

import math
import os


def percentile(values, p: float):
    """The nearest-rank ``p``-th percentile (0-100) of ``values`` (any order); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(p / 100 * len(ordered), 9))  # round: 99.9% of 1000 is 999, not 999.0...1
    return ordered[max(0, min(len(ordered), rank) - 1)]


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and its direct children (a gunicorn master and its workers)."""
    pids = [root_pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == root_pid:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def cpu_seconds(pids) -> float:
    """User + system CPU seconds of these processes (those that have exited count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_mb(root_pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return round(total / 2**20, 1)
