from __future__ import annotations

import math

import numpy as np
import orjson

from chargewatch.collector.pipeline import LINE_SLICE_ROWS, Pipeline
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet
from chargewatch.storage.lineproto import MeterLines

T = 1_795_487_165.25


def _batch(
    index: ConnectorIndex, rows: list[tuple[str, int, float, dict[str, float]]]
) -> MeterBatch:
    values = np.full((len(rows), N_FIELDS), np.nan)
    conn = []
    for k, (charger, connector, _, fields) in enumerate(rows):
        conn.append(index.id(charger, connector))
        for name, v in fields.items():
            values[k, FIELD_INDEX[name]] = v
    ts = np.array([r[2] for r in rows])
    return MeterBatch(np.array(conn, np.int32), ts, ts, values)


def _parse(line: str) -> tuple[str, dict[str, float], int]:
    series, fields, ts = line.rsplit(" ", 2)
    return series, {k: float(v) for k, v in (f.split("=") for f in fields.split(","))}, int(ts)


def test_lines_carry_exact_values_omit_unreported_and_group_by_shape() -> None:
    fleet = Fleet({}, {"CP 1": ChargerSpec("CP 1", site="s=1")})
    index = ConnectorIndex(fleet)
    rows = [
        ("CP 1", 1, T, {"energy_wh": 1234.5, "power_w": 7000.0}),
        ("B", 2, T + 1, {"power_w": 0.1 + 0.2, "current_l1_a": -0.0}),
        ("B", 2, T + 2, {"power_w": math.inf, "voltage_l1_v": 230.1}),  # inf: not written
        ("B", 2, T + 3, {}),  # nothing reported: no line
        ("CP 1", 1, T + 4, {"energy_wh": 1e-7, "power_w": 1.2345678901234567e16}),
    ]
    lines = MeterLines(index).lines(_batch(index, rows))
    parsed = sorted((_parse(x) for x in lines), key=lambda p: p[2])
    assert [p[2] for p in parsed] == [round((T + d) * 1000) for d in (0, 1, 2, 4)]
    assert parsed[0][0] == r"meter,charger=CP\ 1,connector=1,site=s\=1"
    assert parsed[0][1] == {"energy_wh": 1234.5, "power_w": 7000.0}
    assert parsed[1][1] == {"power_w": 0.1 + 0.2, "current_l1_a": 0.0}
    assert parsed[2][1] == {"voltage_l1_v": 230.1}
    assert parsed[3][1] == {"energy_wh": 1e-7, "power_w": 1.2345678901234567e16}


def test_every_double_is_written_so_it_reads_back_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    index = ConnectorIndex()
    values = np.full((n, N_FIELDS), np.nan)
    values[:, 0] = rng.uniform(0, 1e9, n)
    values[:, 1] = rng.normal(0, 1, n) * 10.0 ** rng.integers(-12, 15, n)
    conn = np.array([index.id("A", 1 + k % 3) for k in range(n)], np.int32)
    ts = T + np.arange(n, dtype=float)
    lines = MeterLines(index).lines(MeterBatch(conn, ts, ts, values))
    got = {p[2]: p[1] for p in map(_parse, lines)}
    for k in range(n):
        fields = got[round(ts[k] * 1000)]
        assert fields["energy_wh"] == values[k, 0]
        assert fields["power_w"] == values[k, 1]


def test_the_pipeline_writes_a_large_batch_in_slices_with_every_line_once() -> None:
    """Rows are formatted LINE_SLICE_ROWS at a time; slicing must neither drop,
    repeat nor change a line at or across the slice edges. (Within a call, lines
    come grouped by their set of fields, so only the set is compared.)"""

    class Sink:
        def __init__(self) -> None:
            self.writes: list[list[str]] = []

        def write(self, lines: list[str]) -> None:
            self.writes.append(lines)

    sink = Sink()
    index = ConnectorIndex()
    pipe = Pipeline(index, lines=sink)
    n = 2 * LINE_SLICE_ROWS + 37
    t0 = 1_795_487_165.0
    msgs = []
    for c in range(n // 100 + 1):
        k = min(100, n - 100 * c)
        doc = {
            "ts": [t0 + i for i in range(k)],
            "energy_wh": [1000.0 + c + i / 7 for i in range(k)],
            # Shapes change mid-message, so row groups cross the slice edges.
            "power_w": [7000.0 + i if i % 3 else None for i in range(k)],
        }
        msgs.append((f"ev/CP{c}/1/meter", orjson.dumps(doc), t0 + 200))
    batch = pipe.process(msgs, t0 + 200)
    assert len(batch) == n
    assert [len(w) for w in sink.writes] == [LINE_SLICE_ROWS, LINE_SLICE_ROWS, 37]
    written = [line for w in sink.writes for line in w]
    assert len(set(written)) == n  # every row distinct: a repeat would show
    assert sorted(written) == sorted(MeterLines(index).lines(batch))
