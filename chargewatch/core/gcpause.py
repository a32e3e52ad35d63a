"""Pausing the cyclic garbage collector around work that builds many short-lived containers.

CPython starts a collection every few hundred container allocations, and a
full one once enough of them have survived; a full collection scans every
live container, so its cost grows with the fleet held in memory. Work that
builds a large acyclic structure and drops it again (a parsed batch, one step
of session state, a checkpoint being encoded) triggers such collections over
and over without ever giving the collector anything to free. Pausing it until
the structure is gone loses nothing: the containers are freed by reference
counting, and the next allocations resume the usual schedule.

Only for structures that cannot hold a cycle (JSON-like data, arrays, plain
records); never around code that calls out to arbitrary callbacks.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC inside the block (re-entrant: an outer pause stays)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
