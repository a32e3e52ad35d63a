"""An orphan OCPP answer is recorded by the clock, not at the charger's next frame."""

from __future__ import annotations

from chargewatch.collector.pipeline import OCPP_EXPIRE_INTERVAL_S, Pipeline
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.fleet import ConnectorIndex

T0 = 1_795_000_000.0


def test_an_orphan_answer_of_a_charger_that_goes_quiet_is_rejected_on_tick() -> None:
    index = ConnectorIndex()
    pipeline = Pipeline(index, ocpp=OcppDecoder(index))
    # A CALLRESULT whose CALL never arrives, and then silence from CP-Q.
    pipeline.process([("ocpp/1.6/CP-Q/csms", b'[3, "lost-1", {}]', T0)], T0)
    assert pipeline.stats.rejected_by_reason.get("orphan_result", 0) == 0
    pipeline.tick(T0 + 1)
    for k in range(1, 400):
        pipeline.tick(T0 + k * OCPP_EXPIRE_INTERVAL_S)
        if pipeline.stats.rejected_by_reason.get("orphan_result"):
            break
    assert pipeline.stats.rejected_by_reason == {"orphan_result": 1}
    (rejection,) = pipeline.rejected
    assert "'lost-1'" in rejection.detail and rejection.topic == "ocpp/1.6/CP-Q/csms"
    assert k * OCPP_EXPIRE_INTERVAL_S <= 300 + OCPP_EXPIRE_INTERVAL_S  # within its wait + a sweep
