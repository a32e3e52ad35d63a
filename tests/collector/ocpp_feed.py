"""A tiny driver for decoder tests: feed frames, read back rows, events and rejects."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import METER_FIELDS, MeterBatch
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex

T0 = datetime.fromisoformat("2026-11-24T03:00:00Z").timestamp()


class Feed:
    def __init__(self, version: str = "1.6", **options: Any) -> None:
        self.version = version
        self.index = ConnectorIndex()
        self.decoder = OcppDecoder(self.index, **options)
        self.sink = DecodeSink()
        self._batches: list[MeterBatch] = []

    def send(
        self,
        frame: Any,
        *,
        source: str = "cp",
        charger: str = "CP1",
        recv: float = T0 + 1,
        raw: bytes | None = None,
        version: str | None = None,
    ) -> Feed:
        version = version or self.version
        topic = f"ocpp/{version}/{charger}/{source}"
        payload = raw if raw is not None else json.dumps(frame).encode()
        self.decoder.decode(topic, version, charger, source, payload, recv, self.sink)
        return self

    def call(self, action: str, payload: dict[str, Any], msg_id: str = "1", **kw: Any) -> Feed:
        return self.send([2, msg_id, action, payload], **kw)

    def result(self, msg_id: str, payload: dict[str, Any], **kw: Any) -> Feed:
        kw.setdefault("source", "csms")
        return self.send([3, msg_id, payload], **kw)

    def rows(self) -> list[dict[str, float]]:
        """Each row as {field: value} without the NaN fields, plus conn/ts."""
        out = []
        if len(self.sink.meter):  # build() drains the builder: keep what it gave
            self._batches.append(self.sink.meter.build())
        batch = MeterBatch.concat(self._batches)
        for i in range(len(batch)):
            row = {n: float(v) for n, v in zip(METER_FIELDS, batch.values[i], strict=True)}
            row = {n: v for n, v in row.items() if not math.isnan(v)}
            _charger, connector = self.index.keys[int(batch.conn[i])]
            row["connector"] = connector
            row["ts"] = float(batch.ts[i])
            out.append(row)
        return out

    def events(self, kind: str | None = None) -> list[Any]:
        return [e for e in self.sink.events if kind is None or type(e).__name__ == kind]

    def reasons(self) -> list[str]:
        return [r.reason for r in self.sink.rejects]


def mv16(
    *samples: dict[str, Any], ts: str = "2026-11-24T03:00:00Z", **extra: Any
) -> dict[str, Any]:
    return {
        "connectorId": 1,
        **extra,
        "meterValue": [{"timestamp": ts, "sampledValue": list(samples)}],
    }


def mv201(
    *samples: dict[str, Any], ts: str = "2026-11-24T03:00:00Z", evse: int = 1
) -> dict[str, Any]:
    return {"evseId": evse, "meterValue": [{"timestamp": ts, "sampledValue": list(samples)}]}
