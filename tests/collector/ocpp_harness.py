"""Runs OCPP fixture files (tests/collector/testdata/ocpp/*.json) through the decoder.

A fixture is ``{"description", "reported_in", "version", "charger", "frames":
[{"source", "recv", "frame"}], "expect": {"rows", "events", "rejects", "quirks"}}``:

* ``rows``: every batch row, in order: ``{"connector", "ts", "fields": {name: value}}``;
  fields not named must be NaN.
* ``events``: every event, in order: ``{"type": ClassName, <field>: <value>, ...}``;
  only the named fields are compared.
* ``rejects``: every rejection, in order: ``{"reason", "detail" (substring), "index"}``.
* ``quirks``: the decoder's quirk counts, exactly (absent = none).

``recv`` and ``ts`` are RFC 3339 strings; ``"expire": "<time>"`` as a frame runs
``OcppDecoder.expire`` at that time instead of decoding.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import METER_FIELDS
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex

FIXTURES = Path(__file__).parent / "testdata" / "ocpp"


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def run(fixture: dict[str, Any]) -> tuple[OcppDecoder, ConnectorIndex, DecodeSink]:
    index = ConnectorIndex()
    decoder = OcppDecoder(index)
    sink = DecodeSink()
    version = fixture["version"]
    charger = fixture.get("charger", "CP1")
    for step in fixture["frames"]:
        if "expire" in step:
            decoder.expire(epoch(step["expire"]), sink)
            continue
        source = step.get("source", "cp")
        topic = f"ocpp/{version}/{charger}/{source}"
        raw = step["raw"].encode() if "raw" in step else orjson.dumps(step["frame"])
        decoder.decode(topic, version, charger, source, raw, epoch(step["recv"]), sink)
    return decoder, index, sink


def check(fixture: dict[str, Any]) -> None:
    decoder, index, sink = run(fixture)
    expect = fixture["expect"]
    charger = fixture.get("charger", "CP1")

    rejects = [(r.reason, r.detail, r.index) for r in sink.rejects]
    want_rejects = expect.get("rejects", [])
    assert len(rejects) == len(want_rejects), rejects
    for (reason, detail, idx), want in zip(rejects, want_rejects, strict=True):
        assert reason == want["reason"], (reason, detail)
        assert want.get("detail", "") in detail, (want, detail)
        if "index" in want:
            assert idx == want["index"], (want, idx)

    batch = sink.meter.build()
    want_rows = expect.get("rows", [])
    assert len(batch) == len(want_rows), batch.values
    for i, want in enumerate(want_rows):
        assert index.keys[int(batch.conn[i])] == (charger, want["connector"])
        assert batch.ts[i] == epoch(want["ts"])
        for name, value in zip(METER_FIELDS, batch.values[i], strict=True):
            expected = want["fields"].get(name)
            if expected is None:
                assert math.isnan(value), (i, name, value)
            else:
                assert value == expected or math.isclose(value, expected, rel_tol=1e-12), (
                    i,
                    name,
                    value,
                    expected,
                )

    want_events = expect.get("events", [])
    got = [(type(e).__name__, asdict(e)) for e in sink.events]
    assert len(got) == len(want_events), [g[0] for g in got]
    for (kind, fields), want in zip(got, want_events, strict=True):
        assert kind == want["type"], (kind, want)
        for key, value in want.items():
            if key == "type":
                continue
            actual = fields[key]
            expected = epoch(value) if key == "ts" else value
            if isinstance(actual, tuple):
                actual = list(actual)
            assert actual == expected, (kind, key, actual, expected)

    assert dict(decoder.quirks) == expect.get("quirks", {})
