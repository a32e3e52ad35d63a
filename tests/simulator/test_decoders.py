"""The collector's own decoders accept everything the simulator sends, unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from chargewatch.ingest.decode_native import NativeDecoder
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.ingest.topics import TopicRouter
from chargewatch.model.batch import MeterBatch
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.events import StatusEvent, TransactionEvent
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.simulator import DEFAULT_START, SimConfig, Simulation

CFG = SimConfig(
    chargers=6, sites=2, seed=17, start=DEFAULT_START + 8 * 3600, duration=2 * 3600,
    interval=20.0, random_faults=4, arrival_rate=2.0,
)  # fmt: skip


@pytest.mark.parametrize("batch", [1, 8])
def test_native_decoder_accepts_every_message(batch: int) -> None:
    sim = Simulation(CFG.replace(batch=batch))
    index = ConnectorIndex(sim.fleet())
    dec = NativeDecoder(index)
    router = TopicRouter()
    sink = DecodeSink()
    for recv, topic, payload in sim.messages():
        dec.decode(router.route(topic), topic, payload, recv, sink)
    assert sink.rejects == []
    got = sink.meter.build()
    want = MeterBatch.concat(list(sim.meter_batches()))
    assert len(got) == len(want)
    order_g = np.lexsort((got.ts, got.conn))
    order_w = np.lexsort((want.ts, want.conn))
    np.testing.assert_array_equal(got.conn[order_g], want.conn[order_w])
    np.testing.assert_allclose(got.values[order_g], want.values[order_w], rtol=1e-12)
    kinds = {type(e).__name__ for e in sink.events}
    assert {"StatusEvent", "TransactionEvent", "HeartbeatEvent", "OnlineEvent"} <= kinds


def test_ocpp_decoder_accepts_every_frame() -> None:
    sim = Simulation(CFG.replace(protocol="ocpp1.6", batch=3, kw_power_fraction=0.5))
    dec = OcppDecoder(ConnectorIndex(sim.fleet()))
    sink = DecodeSink()
    for recv, topic, payload in sim.messages():
        _, version, charger, source = topic.split("/")
        dec.decode(topic, version, charger, source, payload, recv, sink)
    assert sink.rejects == []
    got = sink.meter.build()
    stops = [e for e in sink.events if isinstance(e, TransactionEvent) and e.kind == "stop"]
    # StopTransaction's transactionData adds a Transaction.Begin and .End register row
    want = MeterBatch.concat(list(sim.meter_batches()))
    assert len(got) == len(want) + 2 * len(stops)
    got = got.take(np.isfinite(got.col("power_w")))
    assert len(got) == len(want)
    order_g = np.lexsort((got.ts, got.conn))
    order_w = np.lexsort((want.ts, want.conn))
    # OCPP carries strings rounded to what a charger prints (W to 0.01, Wh to 0.001)
    np.testing.assert_allclose(got.col("power_w")[order_g], want.col("power_w")[order_w], atol=0.01)
    np.testing.assert_allclose(
        got.col("energy_wh")[order_g], want.col("energy_wh")[order_w], atol=1e-3
    )
    starts = [e for e in sink.events if isinstance(e, TransactionEvent) and e.kind == "start"]
    assert starts and all(e.transaction_id for e in starts)
    assert any(isinstance(e, StatusEvent) for e in sink.events)


def test_ocpp_decoder_copes_with_the_field_quirks() -> None:
    cfg = CFG.replace(chargers=12, batch=2).with_scenario("ocpp_quirks")
    sim = Simulation(cfg)
    quirks = {n.name for n in sim.truth().normals if n.name.startswith("ocpp_quirk:")}
    assert len(quirks) == 4
    dec = OcppDecoder(ConnectorIndex(sim.fleet()))
    sink = DecodeSink()
    for recv, topic, payload in sim.messages():
        _, version, charger, source = topic.split("/")
        dec.decode(topic, version, charger, source, payload, recv, sink)
    assert sink.rejects == []
    got = sink.meter.build()
    want = MeterBatch.concat(list(sim.meter_batches()))
    got = got.take(np.isfinite(got.col("power_w")))
    assert len(got) == len(want)
    og, ow = np.lexsort((got.ts, got.conn)), np.lexsort((want.ts, want.conn))
    np.testing.assert_allclose(got.ts[og], want.ts[ow], atol=1e-3)  # offsets understood
    np.testing.assert_allclose(got.col("power_w")[og], want.col("power_w")[ow], atol=0.01)
    e_got, e_want = got.col("energy_wh")[og], want.col("energy_wh")[ow]
    present = np.isfinite(e_got)
    assert 0.8 < present.mean() < 1.0  # drop-outs are missing, not zero
    np.testing.assert_allclose(e_got[present], e_want[present], atol=1e-3)
