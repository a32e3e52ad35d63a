"""The OCPP decoder's per-charger state is bounded (issue 17, part 2).

Pending CALLs and early answers expire by the clock the decoder is handed;
chargers silent for ``idle_prune_s`` are forgotten, or parked with only their
open transactions; at most ``max_chargers`` are tracked, the one longest silent
evicted and counted. Sizes of the structures are asserted, never timings.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.decoding import DecodeSink
from chargewatch.model.fleet import ConnectorIndex
from tests.collector.ocpp_feed import T0, Feed

HEARTBEAT = b'[2,"1","Heartbeat",{}]'
DAY = 86_400.0


def _flood(decoder: OcppDecoder, n: int) -> tuple[int, int]:
    """n heartbeats, each of a new charger id; (events, rejections) they gave.

    A sink per message, dropped at once: what stays allocated is the decoder's.
    """
    events = rejects = 0
    for k in range(n):
        charger = f"FLOOD{k}"
        sink = DecodeSink()
        decoder.decode(
            f"ocpp/1.6/{charger}/cp", "1.6", charger, "cp", HEARTBEAT, T0 + k * 1e-3, sink
        )
        events += len(sink.events)
        rejects += len(sink.rejects)
    return events, rejects


def test_a_flood_of_unique_charger_ids_is_capped_then_pruned() -> None:
    decoder = OcppDecoder(ConnectorIndex(), max_chargers=10_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        got = _flood(decoder, 100_000)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert got == (100_000, 0)  # every heartbeat decoded
    assert decoder.tracked == 10_000 and len(decoder.versions) == 10_000
    assert decoder.evicted == 90_000
    assert "FLOOD99999" in decoder.versions and "FLOOD89999" not in decoder.versions
    # 10,000 chargers' state (~1.2 kB each, measured), not 100,000 of them.
    assert held < 10_000 * 2_000, held
    sink = DecodeSink()
    decoder.expire(T0 + 100 + DAY, sink)
    assert decoder.tracked == 0 and decoder.versions == {}
    assert decoder.pruned == 10_000 and decoder.parked == 0
    assert sink.events == [] and sink.rejects == []


def _start16(f: Feed, charger: str, msg_id: str, recv: float, answer: bool = True) -> None:
    f.call(
        "StartTransaction",
        {
            "connectorId": 2,
            "idTag": "TAG",
            "meterStart": 100,
            "timestamp": "2026-11-24T03:00:00Z",
        },
        msg_id,
        charger=charger,
        recv=recv,
    )
    if answer:
        f.result(
            msg_id,
            {"transactionId": 7, "idTagInfo": {"status": "Accepted"}},
            charger=charger,
            recv=recv + 1,
        )


def test_calls_that_are_never_answered_expire_and_stay_bounded() -> None:
    f = Feed(max_pending=16, pending_timeout=60.0)
    for k in range(1000):
        _start16(f, "CP1", f"s{k}", T0 + k * 0.01, answer=False)
        f.send([3, f"orphan{k}", {}], source="csms", recv=T0 + k * 0.01)
        state = f.decoder._chargers["CP1"]
        assert len(state.pending) <= 16 and len(state.early) <= 16
        assert len(state.recent) <= f.decoder._ctx.history
    f.decoder.expire(T0 + 100.0, f.sink)
    state = f.decoder._chargers["CP1"]
    assert state.pending == {} and state.early == {}
    # Each start without its answer is still a start, with no transaction id.
    starts = f.events("TransactionEvent")
    assert len(starts) == 1000
    assert all("transaction_id_unknown" in e.flags for e in starts)
    assert f.reasons() == ["orphan_result"] * 1000


def test_an_open_16_transaction_outlives_a_long_silence() -> None:
    f = Feed()
    _start16(f, "OPEN", "s1", T0)
    f.call("Heartbeat", {}, "h1", charger="IDLE", recv=T0)
    for day in range(1, 4):  # three days of sweeps
        f.decoder.expire(T0 + day * DAY + 10, f.sink)
    assert f.decoder.tracked == 1 and f.decoder.pruned == 1 and f.decoder.parked == 1
    state = f.decoder._chargers["OPEN"]
    assert state.parked and state.tx_connector == {"7": 2}
    assert state.pending == {} and state.recent == {} and state.early == {}
    assert "IDLE" not in f.decoder.versions and "OPEN" in f.decoder.versions
    back = T0 + 3 * DAY + 100
    f.call(
        "StopTransaction",
        {"transactionId": 7, "meterStop": 5000, "timestamp": "2026-11-27T03:00:00Z"},
        "s2",
        charger="OPEN",
        recv=back,
    )
    stop = f.events("TransactionEvent")[-1]
    assert (stop.kind, stop.connector, stop.flags) == ("stop", 2, ())
    assert not f.decoder._chargers["OPEN"].parked
    f.decoder.expire(back + DAY + 1, f.sink)
    assert f.decoder.tracked == 0 and f.decoder.pruned == 2


def _te(event: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event,
        "timestamp": "2026-11-24T03:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "T1"},
        **extra,
    }


def test_an_open_201_transaction_keeps_its_evse_and_an_ended_one_does_not() -> None:
    f = Feed("2.0.1")
    for charger in ("OPEN", "DONE"):
        f.call(
            "TransactionEvent",
            _te("Started", 0, evse={"id": 3, "connectorId": 1}),
            "1",
            charger=charger,
            recv=T0,
        )
    f.call("TransactionEvent", _te("Ended", 1), "2", charger="DONE", recv=T0 + 60)
    f.decoder.expire(T0 + 2 * DAY, f.sink)
    assert f.decoder.tracked == 1 and f.decoder.parked == 1 and f.decoder.pruned == 1
    state = f.decoder._chargers["OPEN"]
    assert state.tx_connector == {"T1": 3} and list(state.evse) == [3]
    f.call("TransactionEvent", _te("Ended", 1), "2", charger="OPEN", recv=T0 + 2 * DAY + 5)
    end = f.events("TransactionEvent")[-1]
    assert (end.kind, end.connector, end.flags) == ("stop", 3, ())


def test_the_cap_evicts_the_charger_longest_silent_and_gives_up_its_calls() -> None:
    f = Feed(max_chargers=2)
    _start16(f, "A", "s1", T0, answer=False)  # waits for its answer
    f.call("Heartbeat", {}, "h", charger="B", recv=T0 + 1)
    f.call("Heartbeat", {}, "h", charger="A", recv=T0 + 2)  # A heard again: B is older
    f.call("Heartbeat", {}, "h", charger="C", recv=T0 + 3)
    assert set(f.decoder._chargers) == {"A", "C"} and f.decoder.evicted == 1
    f.call("Heartbeat", {}, "h", charger="D", recv=T0 + 4)
    assert set(f.decoder._chargers) == {"C", "D"} and f.decoder.evicted == 2
    # A's unanswered start was not lost with its state: emitted without an id.
    (start,) = f.events("TransactionEvent")
    assert "transaction_id_unknown" in start.flags
