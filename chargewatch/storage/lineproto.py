"""InfluxDB line protocol built from columnar batches.

Measurements, tags and fields (documented in README "Stored series"):

* ``meter`` — tags ``charger``, ``connector``, ``site``; one float field per
  reported meter value (``energy_wh``, ``power_w``, ``current_l1_a`` ...); time =
  the meter's clock. Unreported values are omitted, never written as 0.

Tags are only the low-cardinality identity of a connector; everything that
varies per sample is a field. Timestamps are written in milliseconds.

Rows are grouped by which fields they carry, and each group is formatted by
one function compiled for that set of fields, so the per-row work is a single
f-string (a third cheaper than a ``%`` template, which is parsed on every row).
"""

from __future__ import annotations

__all__ = [
    "PRECISION",
    "LineSink",
    "escape_field_string",
    "escape_measurement",
    "escape_tag",
    "format_value",
    "meter_lines",
    "series_prefix",
]

from collections.abc import Callable
from typing import Protocol

import numpy as np
import orjson

from chargewatch.model.batch import METER_FIELDS, MeterBatch
from chargewatch.model.fleet import ConnectorIndex


class LineSink(Protocol):
    """Where line protocol goes: InfluxDB, a local file, or nowhere."""

    def write(self, lines: list[str]) -> None: ...


PRECISION = "ms"

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_MEAS_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})


def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, equals signs, spaces)."""
    # A trailing backslash would escape the separator that follows it.
    out = value.translate(_TAG_ESCAPES)
    return out + " " if out.endswith("\\") else out


def escape_measurement(value: str) -> str:
    return value.translate(_MEAS_ESCAPES)


def escape_field_string(value: str) -> str:
    """A string field value, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_value(value: float | int | bool | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return escape_field_string(value)


def series_prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,k=v,...`` with tags sorted by key (InfluxDB's preferred order)."""
    parts = [escape_measurement(measurement)]
    for k in sorted(tags):
        v = tags[k]
        if v:  # empty tag values are not allowed in line protocol
            parts.append(f"{escape_tag(k)}={escape_tag(v)}")
    return ",".join(parts)


class MeterLines:
    """Formats ``meter`` lines; caches each connector's series prefix."""

    def __init__(self, index: ConnectorIndex, measurement: str = "meter") -> None:
        self.index = index
        self.measurement = measurement
        self._prefix: list[str] = []
        self._formats: dict[bytes, tuple[Callable[..., str], list[int]]] = {}

    def _prefixes(self) -> list[str]:
        n = len(self.index)
        while len(self._prefix) < n:
            i = len(self._prefix)
            charger, connector = self.index.keys[i]
            self._prefix.append(
                series_prefix(
                    self.measurement,
                    {
                        "charger": charger,
                        "connector": str(connector),
                        "site": self.index.site_of(i),
                    },
                )
                + " "
            )
        return self._prefix

    def _format(self, mask: np.ndarray) -> tuple[Callable[..., str], list[int]]:
        key = mask.tobytes()
        hit = self._formats.get(key)
        if hit is None:
            cols = [int(i) for i in np.flatnonzero(mask)]
            hit = self._formats[key] = (_line_function([METER_FIELDS[i] for i in cols]), cols)
        return hit

    def lines(self, batch: MeterBatch) -> list[str]:
        n = len(batch)
        if n == 0:
            return []
        prefixes = self._prefixes()
        # inf has no line-protocol form (and the decoders reject it): unreported.
        present = np.isfinite(batch.values)
        nonempty = present.any(axis=1)
        ts_ms = np.round(batch.ts * 1000.0).astype(np.int64)
        # Pack each row's field mask into an integer to group rows by shape.
        weights = 1 << np.arange(present.shape[1], dtype=np.int64)
        shape = present.astype(np.int64) @ weights
        out: list[str] = []
        for code in np.unique(shape[nonempty]):
            rows = np.flatnonzero(shape == code)
            line, cols = self._format(present[rows[0]])
            block = batch.values[rows]
            # orjson writes each column's floats in C with the shortest text that
            # reads back to the same double (as repr does): a third of the cost
            # of formatting every value in Python.
            texts = [_texts(block[:, c]) for c in cols]
            pre = [prefixes[c] for c in batch.conn[rows].tolist()]
            out.extend(map(line, pre, *texts, _texts(ts_ms[rows])))
        return out


def _line_function(fields: list[str]) -> Callable[..., str]:
    """``f(prefix, value_1, ..., value_k, time) -> line`` for these fields.

    Built from source because an f-string is compiled to plain concatenation;
    the names are METER_FIELDS, identifiers checked here, never input.
    """
    if not all(f.isidentifier() for f in fields):
        raise ValueError(f"field names must be identifiers: {fields}")
    args = ", ".join(f"v{i}" for i in range(len(fields)))
    body = ",".join(f"{name}={{v{i}}}" for i, name in enumerate(fields))
    fn: Callable[..., str] = eval(f"lambda prefix, {args}, ts: f'{{prefix}}{body} {{ts}}'")
    return fn


def _texts(column: np.ndarray) -> list[str]:
    """Each number of a column as its JSON text."""
    doc = orjson.dumps(np.ascontiguousarray(column), option=orjson.OPT_SERIALIZE_NUMPY)
    return doc[1:-1].decode("ascii").split(",")


def meter_lines(index: ConnectorIndex, batch: MeterBatch) -> list[str]:
    """One-off convenience; long-running code keeps a :class:`MeterLines`."""
    return MeterLines(index).lines(batch)
