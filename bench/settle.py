"""Wait for milvus-lite's background work to finish before timing searches.

After a flush, milvus-lite 3.x compacts segments and builds their indexes (HNSW, BM25,
scalar) on a background thread, and until that is done it searches the new segments by
brute force: at 100k rows a dense search takes ~170 ms while the HNSW build runs and ~40 ms
after. `describe_index` already says "Finished" then, so the only sign is the CPU the
Milvus process spends. Search latency is measured on the settled index, as a deployment
serves it between ingests; the time to settle is printed as its own figure.
"""

from __future__ import annotations

import os
import time

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def wait_until_idle(
    pid: int,
    *,
    busy_below: float = 0.15,
    window: float = 2.0,
    calm_windows: int = 3,
    deadline: float = 900.0,
) -> float:
    """Blocks until ``pid`` has used under ``busy_below`` of one core for ``calm_windows``
    windows in a row; returns the seconds waited. Raises TimeoutError after ``deadline``."""
    start = time.monotonic()
    calm = 0
    before = cpu_seconds(pid)
    while calm < calm_windows:
        if time.monotonic() - start > deadline:
            raise TimeoutError(f"process {pid} still busy after {deadline:.0f} s")
        time.sleep(window)  # sampling a CPU counter, not waiting for a result
        now = cpu_seconds(pid)
        calm = calm + 1 if (now - before) / window < busy_below else 0
        before = now
    return time.monotonic() - start - calm_windows * window
