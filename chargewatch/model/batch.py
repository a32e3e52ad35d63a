"""Columnar batches of meter samples: the unit every stage after decoding works on.

One row per sample, for all connectors at once. Rows refer to connectors by their
dense index in :class:`chargewatch.model.fleet.ConnectorIndex`, so per-connector state
everywhere downstream is a numpy array indexed the same way.
"""

from __future__ import annotations

__all__ = ["FIELD_INDEX", "METER_FIELDS", "BatchBuilder", "MeterBatch"]

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Field order of ``MeterBatch.values``. Units are in the names. NaN = not reported.
METER_FIELDS: tuple[str, ...] = (
    "energy_wh",  # active import register, Wh (monotonic except on reset/meter swap)
    "power_w",  # active import power, W
    "current_l1_a",
    "current_l2_a",
    "current_l3_a",
    "voltage_l1_v",  # phase-to-neutral
    "voltage_l2_v",
    "voltage_l3_v",
    "temperature_c",
    "soc_pct",
    "offered_a",  # current the charger offers the EV (pilot signal / charging profile)
)
FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(METER_FIELDS)}
N_FIELDS = len(METER_FIELDS)


@dataclass(frozen=True, slots=True)
class MeterBatch:
    """Meter samples of many connectors.

    Rows are in arrival order, which is not necessarily ``ts`` order: chargers
    deliver queued samples late. Consumers that need order sort per connector.
    """

    conn: NDArray[np.int32]  # dense connector index, shape (n,)
    ts: NDArray[np.float64]  # meter clock, epoch seconds, shape (n,)
    recv: NDArray[np.float64]  # receive clock, epoch seconds, shape (n,)
    values: NDArray[np.float64]  # shape (n, len(METER_FIELDS)); NaN = not reported

    def __len__(self) -> int:
        return int(self.conn.shape[0])

    def col(self, name: str) -> NDArray[np.float64]:
        """One field as a (strided) view, e.g. ``batch.col("power_w")``."""
        return self.values[:, FIELD_INDEX[name]]

    @staticmethod
    def empty() -> MeterBatch:
        return MeterBatch(
            np.empty(0, np.int32),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty((0, N_FIELDS), np.float64),
        )

    def take(self, rows: NDArray[np.intp] | NDArray[np.bool_] | slice) -> MeterBatch:
        """The rows selected (a slice gives views, no copy)."""
        return MeterBatch(self.conn[rows], self.ts[rows], self.recv[rows], self.values[rows])

    @staticmethod
    def concat(batches: list[MeterBatch]) -> MeterBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return MeterBatch.empty()
        if len(batches) == 1:
            return batches[0]
        return MeterBatch(
            np.concatenate([b.conn for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.recv for b in batches]),
            np.concatenate([b.values for b in batches]),
        )


class BatchBuilder:
    """Accumulates decoded rows cheaply (Python lists), then builds one MeterBatch.

    ``rows`` holds one tuple of ``N_FIELDS`` floats per sample (NaN where absent):
    appending a tuple per message is the cheapest thing a decoder can do, and the
    conversion to numpy happens once per batch.
    """

    __slots__ = ("blocks", "conn", "recv", "rows", "ts")

    def __init__(self) -> None:
        self.conn: list[int] = []
        self.ts: list[float] = []
        self.recv: list[float] = []
        self.rows: list[tuple[float, ...]] = []
        # Columnar messages arrive as arrays already; keep them whole.
        self.blocks: list[MeterBatch] = []

    def __len__(self) -> int:
        return len(self.conn) + sum(len(b) for b in self.blocks)

    def add_block(self, block: MeterBatch) -> None:
        if len(block):
            self.blocks.append(block)

    def add(self, conn: int, ts: float, recv: float, row: tuple[float, ...]) -> None:
        self.conn.append(conn)
        self.ts.append(ts)
        self.recv.append(recv)
        self.rows.append(row)

    def build(self) -> MeterBatch:
        blocks, self.blocks = self.blocks, []
        if not self.conn:
            return MeterBatch.concat(blocks)
        batch = MeterBatch(
            np.fromiter(self.conn, np.int32, len(self.conn)),
            np.fromiter(self.ts, np.float64, len(self.ts)),
            np.fromiter(self.recv, np.float64, len(self.recv)),
            np.array(self.rows, dtype=np.float64).reshape(len(self.rows), N_FIELDS),
        )
        self.conn, self.ts, self.recv, self.rows = [], [], [], []
        return MeterBatch.concat([batch, *blocks]) if blocks else batch
