"""How fast the host is *right now*, measured beside a benchmark's own runs.

The detector figure moved 4.3-7.4 M samples/s on one commit on one machine
within a day (docs/performance.md). A benchmark that only reports its own rate
cannot tell a slower build from a busier host. These four probes, each a few
tens of milliseconds, time work that does not depend on chargewatch's code:

- ``stream_gb_s``: copying 64 MiB (out of every cache): the memory bandwidth
  the process gets, which neighbours on the host share;
- ``l3_gb_s``: reading an 8 MiB array over and over (in L3 on the machines
  measured, not in L2): the shared last-level cache, the size of the
  detectors' working set at 100k-row updates;
- ``cached_melem_s``: element-wise numpy on arrays that fit in L2 (3 x 96 KiB):
  the core's own speed (clock, turbo) without memory;
- ``python_mops_s``: a plain interpreter loop: what the per-call overhead of
  many small numpy calls pays.

Each is the best of a few repetitions by CPU time (``time.process_time``), so
being descheduled does not count, but a shared cache or memory bus does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

__all__ = ["probe"]

_STREAM_BYTES = 64 * 1024 * 1024
_L3_BYTES = 8 * 1024 * 1024
_L3_ROUNDS = 12
_CACHED_ELEMS = 12 * 1024  # float64: 96 KiB per array, three arrays in L2
_CACHED_ROUNDS = 400
_PY_ITERS = 200_000


def _best(run: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        run()
        best = min(best, time.process_time() - t)
    return max(best, 1e-9)


def probe(reps: int = 3) -> dict[str, float]:
    """The four host figures (larger is faster)."""
    src = np.ones(_STREAM_BYTES // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault both in before timing
    stream_s = _best(lambda: np.copyto(dst, src), reps)

    mid = np.ones(_L3_BYTES // 8)

    def l3() -> None:
        for _ in range(_L3_ROUNDS):
            mid.sum()

    l3_s = _best(l3, reps)

    a = np.linspace(0.0, 1.0, _CACHED_ELEMS)
    b = np.linspace(1.0, 2.0, _CACHED_ELEMS)
    c = np.empty_like(a)

    def cached() -> None:
        for _ in range(_CACHED_ROUNDS):
            np.multiply(a, b, out=c)
            np.add(c, a, out=c)

    cached_s = _best(cached, reps)

    def loop() -> None:
        x = 0
        for i in range(_PY_ITERS):
            x += i & 7

    py_s = _best(loop, reps)
    return {
        # read + write per byte copied
        "stream_gb_s": round(2 * _STREAM_BYTES / stream_s / 1e9, 2),
        "l3_gb_s": round(_L3_ROUNDS * _L3_BYTES / l3_s / 1e9, 2),
        "cached_melem_s": round(2 * _CACHED_ROUNDS * _CACHED_ELEMS / cached_s / 1e6, 1),
        "python_mops_s": round(_PY_ITERS / py_s / 1e6, 2),
    }
