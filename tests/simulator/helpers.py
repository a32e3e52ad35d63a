"""Decoding helpers for the simulator's tests (a minimal native-contract reader)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

Msg = tuple[float, str, bytes]


def meter_samples(msgs: Iterable[Msg]) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (charger, connector): columns of every meter sample, single or batched."""
    cols: dict[tuple[str, int], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for recv, topic, payload in msgs:
        parts = topic.split("/")
        if parts[0] != "ev" or parts[-1] != "meter":
            continue
        key = (parts[1], int(parts[2]))
        d = orjson.loads(payload)
        batch = isinstance(d["ts"], list)
        n = len(d["ts"]) if batch else 1
        c = cols[key]
        for name in ("ts", "energy_wh", "power_w", "temperature_c", "offered_a", "soc_pct"):
            v = d.get(name)
            if v is None:
                c[name].extend([np.nan] * n)
            else:
                c[name].extend(v if batch else [v])
        for name in ("current_a", "voltage_v"):
            v = d[name]
            rows = v if batch else [v]
            c[name].extend([tuple(r) + (np.nan,) * (3 - len(r)) for r in rows])
        c["recv"].extend([recv] * n)
    return {k: {n: np.array(v, dtype=float) for n, v in c.items()} for k, c in cols.items()}


def by_topic_kind(msgs: Iterable[Msg], kind: str) -> list[tuple[float, str, Any]]:
    return [(r, t, orjson.loads(p)) for r, t, p in msgs if t.split("/")[-1] == kind]
