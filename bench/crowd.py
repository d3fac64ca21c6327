"""Customers released at the same moment, on threads (bench/concurrency.py,
bench/llama_server.py, bench/gpu/).

A module of its own, importing nothing but the standard library, so that the GPU bench can
use it on a machine that has none of the service's dependencies (bench/gpu/device.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def at_once(n: int, customer: Callable[[int], None]) -> float:
    """Runs ``customer(0)`` ... ``customer(n - 1)`` on n threads released at the same moment;
    the wall-clock seconds from their release to the last one's end. ``customer`` records
    its own results (and errors: one raised in a thread is only logged by threading)."""
    barrier = threading.Barrier(n + 1)

    def run(i: int) -> None:
        barrier.wait()
        customer(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start
