"""Stops from real firmware, phantom plug-in sessions and honest ``late_data``,
through the OCPP 1.6 decoder and the session engine (issue 18, items 2-4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chargewatch.collector.pipeline import Pipeline
from chargewatch.collector.session_stage import SessionStage
from chargewatch.ingest.decode_ocpp import OcppDecoder
from chargewatch.model.batch import MeterBatch
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.sessions.session_engine import SessionEngine, SessionRecord
from tests.billing.sessionkit import T0, batch, charge, start, status, stop

Frame = tuple[float, str, bytes]  # (recv, topic, payload)

# go-e Charger V4 (github.com/goecharger/go-eCharger-API-v2/issues/106, see
# tests/fixtures/real_ocpp/PROVENANCE.md): the two frames as the issue shows them. The
# StopTransaction says transactionId -1 and is stamped 11 min before its start.
GOE_START = (
    '[2,"531531541","StartTransaction",{"connectorId":1,"idTag":"TEST",'
    '"meterStart":8016,"timestamp":"2022-12-06T20:28:00.000Z"}]'
)
GOE_STOP = (
    '[2,"531531582","StopTransaction",{"transactionId":-1,"meterStop":8016,'
    '"timestamp":"2022-12-06T20:17:05.000Z"}]'
)
GOE_T0 = datetime(2022, 12, 6, 20, 28, tzinfo=UTC).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _cp(recv: float, ch: str, frame: list[Any] | str) -> Frame:
    body = frame if isinstance(frame, str) else json.dumps(frame)
    return (recv, f"ocpp/1.6/{ch}/cp", body.encode())


def _csms(recv: float, ch: str, frame: list[Any]) -> Frame:
    return (recv, f"ocpp/1.6/{ch}/csms", json.dumps(frame).encode())


def _status(ch: str, ts: float, st: str, mid: str) -> Frame:
    body = {"connectorId": 1, "errorCode": "NoError", "status": st, "timestamp": _iso(ts)}
    return _cp(ts + 0.2, ch, [2, mid, "StatusNotification", body])


def _mv(
    ts: float, wh: float | None, w: float | None, ctx: str = "Sample.Periodic"
) -> dict[str, Any]:
    sv = []
    if wh is not None:
        sv.append({"value": f"{wh:.1f}", "context": ctx, "measurand":
                   "Energy.Active.Import.Register", "unit": "Wh"})  # fmt: skip
    if w is not None:
        sv.append({"value": f"{w:.1f}", "context": ctx, "measurand": "Power.Active.Import",
                   "unit": "W"})  # fmt: skip
    return {"timestamp": _iso(ts), "sampledValue": sv}


def _replay(frames: list[Frame], batch_s: float = 5.0, tail_s: float = 86_400.0) -> list[Any]:
    """Frames in recv order through decoder, pipeline and engine; the final records."""
    index = ConnectorIndex()
    recs: list[SessionRecord] = []
    stage = SessionStage(SessionEngine(index), listeners=[recs.extend])
    pipe = Pipeline(index, ocpp=OcppDecoder(index), stages=[stage])
    frames = sorted(frames, key=lambda f: f[0])
    chunk: list[tuple[str, bytes, float]] = []
    for recv, topic, payload in frames:
        if chunk and recv - chunk[0][2] >= batch_s:
            pipe.process(chunk, chunk[-1][2])
            pipe.tick(chunk[-1][2])
            chunk = []
        chunk.append((topic, payload, recv))
    pipe.process(chunk, chunk[-1][2])
    end = chunk[-1][2]
    for k in range(1, 5):  # time passes: waits, graces and pending calls run out
        pipe.tick(end + k * tail_s / 4)
    stage.close(end + tail_s)
    latest: dict[str, SessionRecord] = {}
    for r in recs:
        latest[r.session_id] = r
    return sorted(latest.values(), key=lambda r: r.start)


def _goe_session(*, answer: bool, stop_recv: float) -> list[Frame]:
    """The go-e start, 60-s MeterValues at 11 kW for 30 min, then its broken stop."""
    ch = "goe"
    out = [_status(ch, GOE_T0 - 30, "Preparing", "p"), _cp(GOE_T0 + 0.3, ch, GOE_START)]
    if answer:  # (the log has no CSMS side; any assigned id does)
        res = {"transactionId": 17, "idTagInfo": {"status": "Accepted"}}
        out.append(_csms(GOE_T0 + 0.5, ch, [3, "531531541", res]))
    out.append(_status(ch, GOE_T0 + 1, "Charging", "c"))
    for k in range(31):
        t = GOE_T0 + 60 * k
        body = {
            "connectorId": 1,
            "meterValue": [
                _mv(t, 8016 + 11000 * t / 3600 - 11000 * GOE_T0 / 3600, 11000.0 if k < 30 else 0.0)
            ],
        }
        if answer:
            body["transactionId"] = 17
        out.append(_cp(t + 0.5, ch, [2, f"m{k}", "MeterValues", body]))
    out.append(_cp(stop_recv, ch, GOE_STOP))
    out.append(_status(ch, stop_recv + 1, "Finishing", "f"))
    out.append(_status(ch, stop_recv + 30, "Available", "a"))
    return out


@pytest.mark.parametrize("answer", [True, False])
def test_goe_stop_with_id_minus_1_before_its_start_ends_the_open_transaction(answer: bool) -> None:
    stop_recv = GOE_T0 + 1805.0
    (r,) = _replay(_goe_session(answer=answer, stop_recv=stop_recv))
    assert r.stop_reason == "transaction"
    # Not the 24-h timeout: the stop is taken at its receipt, its own time is impossible.
    assert r.start == GOE_T0 and r.stop == pytest.approx(stop_recv)
    assert {"stop_matched", "stop_time_corrected"} <= set(r.quality)
    assert r.energy_wh == pytest.approx(11000 * 0.5, rel=1e-3)
    # meterStop = meterStart after a charge is not taken as a register reset.
    assert "register_reset" not in r.quality and r.meter_stop_wh is None
    assert "late_data" not in r.quality
    assert r.id_tag == "TEST"


def test_goe_frames_alone_give_a_session_that_ends_at_the_stop() -> None:
    """Just the two real frames (no CSMS answer: the decoder emits the start when
    the charger's next frame expires it), the stop received 30 min later."""
    frames = [_cp(GOE_T0 + 0.3, "goe", GOE_START), _cp(GOE_T0 + 1800.0, "goe", GOE_STOP)]
    (r,) = _replay(frames)
    assert r.stop_reason == "transaction" and r.stop == pytest.approx(GOE_T0 + 1800.0)
    # The StopTransaction gives no reason: 1.6 says that means Local.
    assert r.charger_stop_reason == "Local"
    assert r.energy_wh == 0.0 and r.meter_start_wh == r.meter_stop_wh == 8016.0
    assert {"stop_matched", "stop_time_corrected"} <= set(r.quality)


def _plain_session(
    ch: str, t0: float, *, step: float, minutes: int, tx: int, transaction_data: bool = True
) -> list[Frame]:
    """A clean OCPP 1.6 session: plug-in, authorised 40 s later, 7.4 kW, stop, unplug.

    MeterValues go out one sample a frame, sent up to one interval late (the
    sample is taken, the frame sent with the next one), as chargers do.
    """
    kw = 7.4
    start = t0 + 40.0
    charge_end = start + minutes * 60
    stop_t = charge_end + 120.0
    base = 50_000.0

    def wh(t: float) -> float:
        return base + kw * 1000.0 * (min(max(t, start), charge_end) - start) / 3600.0

    def pw(t: float) -> float:
        return kw * 1000.0 if start <= t < charge_end else 0.0

    out = [_status(ch, t0, "Preparing", f"{tx}p")]
    begin = {"connectorId": 1, "idTag": "TAG", "meterStart": int(base), "timestamp": _iso(start)}
    out.append(_cp(start + 0.3, ch, [2, f"{tx}b", "StartTransaction", begin]))
    res = {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
    out.append(_csms(start + 0.45, ch, [3, f"{tx}b", res]))
    out.append(_status(ch, start, "Charging", f"{tx}c"))
    t = t0
    k = 0
    while t <= stop_t:
        body: dict[str, Any] = {"connectorId": 1, "meterValue": [_mv(t, wh(t), pw(t))]}
        if t >= start:
            body["transactionId"] = tx
        out.append(_cp(t + step * 0.99, ch, [2, f"{tx}m{k}", "MeterValues", body]))
        t += step
        k += 1
    out.append(_status(ch, charge_end, "SuspendedEV", f"{tx}s"))
    stop: dict[str, Any] = {
        "transactionId": tx,
        "meterStop": int(wh(stop_t)),
        "timestamp": _iso(stop_t),
        "reason": "EVDisconnected",
    }
    if transaction_data:  # as many chargers do: the Begin value again, and the End value
        stop["transactionData"] = [
            _mv(start, base, None, "Transaction.Begin"),
            _mv(stop_t, wh(stop_t), None, "Transaction.End"),
        ]
    out.append(_cp(stop_t + 0.4, ch, [2, f"{tx}e", "StopTransaction", stop]))
    out.append(_status(ch, stop_t + 5, "Finishing", f"{tx}f"))
    out.append(_status(ch, stop_t + 20, "Available", f"{tx}a"))
    return out


@pytest.mark.parametrize("step", [10.0, 30.0, 60.0])
def test_clean_ocpp_sessions_carry_no_flag_and_no_phantom(step: float) -> None:
    """Each charger's first session (its plug-in window before we know it sends
    transactions), a second one, and a third on another charger."""
    t0 = 1_800_000_000.0
    frames = _plain_session("A", t0, step=step, minutes=45, tx=1)
    frames += _plain_session("A", t0 + 7200, step=step, minutes=20, tx=2)
    frames += _plain_session("B", t0 + 600, step=step, minutes=90, tx=3)
    recs = _replay(frames)
    assert [r.transaction_id for r in recs] == ["1", "3", "2"]
    for r, minutes in zip(recs, (45, 90, 20), strict=True):
        assert r.quality == (), (r.transaction_id, r.quality)
        assert r.energy_wh == pytest.approx(7400 * minutes / 60, abs=1.0)
        assert r.start == pytest.approx(float(r.periods[0].start))


def test_the_plug_in_window_is_not_a_session_of_its_own_with_samples_in_between() -> None:
    """The phantom: Preparing opens a status session on a charger not yet known to
    send transactions; idle MeterValues arrive in later batches, then the start."""
    t0 = 1_800_000_000.0
    frames = _plain_session("N", t0 - 300, step=10.0, minutes=30, tx=9)
    # The Preparing lasted 5 min before authorisation: move the others accordingly.
    recs = _replay(frames, batch_s=5.0)
    (r,) = recs
    assert r.transaction_id == "9" and r.quality == ()


def test_a_plug_in_that_never_charges_is_a_failed_start_and_not_billed() -> None:
    t0 = 1_800_000_000.0
    frames = [_status("F", t0, "Preparing", "p")]
    for k in range(30):
        t = t0 + 10 * k
        body = {"connectorId": 1, "meterValue": [_mv(t, 1000.0, 0.0)]}
        frames.append(_cp(t + 1, "F", [2, f"m{k}", "MeterValues", body]))
    frames.append(_status("F", t0 + 300, "Available", "a"))
    (r,) = _replay(frames)
    assert r.energy_wh == 0.0 and "failed_start" in r.quality
    assert r.stop_reason == "status"


def test_backlog_of_an_outage_flags_only_the_sessions_it_changed() -> None:
    t0 = 1_800_000_000.0
    a = _plain_session("O", t0, step=10.0, minutes=60, tx=1)  # outage inside
    b = _plain_session("P", t0 + 7200, step=10.0, minutes=60, tx=2)  # after it
    lo, hi = t0 + 1200, t0 + 2400
    a = [((hi + 2.0) if lo <= rc < hi else rc, tp, pl) for rc, tp, pl in a]
    ra, rb = _replay(a + b)
    assert "late_data" in ra.quality
    assert rb.quality == ()
    assert ra.energy_wh == pytest.approx(7400.0, abs=1.0)


def test_clean_native_1hz_session_carries_no_flag() -> None:
    """Native telemetry at 1 Hz in 5-s batches, statuses and transaction events live."""
    index = ConnectorIndex()
    eng = SessionEngine(index)
    ts, e, p = charge(T0 + 30, 40, 11.0, 20_000.0, step=1.0, idle_after=5)
    events = {
        T0: [status("H", "Preparing", T0)],
        T0 + 30: [start("H", "h1", T0 + 30, 20_000.0), status("H", "Charging", T0 + 30)],
        ts[-1]: [stop("H", "h1", ts[-1], e[-1]), status("H", "Finishing", ts[-1])],
    }
    recs: list[SessionRecord] = []
    t = T0
    while t <= ts[-1] + 10:
        sel = [i for i, x in enumerate(ts) if t - 5 < x <= t]
        b = (
            batch(index, "H", 1, [ts[i] for i in sel], [e[i] for i in sel],
                  [p[i] for i in sel], recv=[ts[i] + 0.5 for i in sel])
            if sel else MeterBatch.empty()
        )  # fmt: skip
        evs = [ev for k, v in events.items() if t - 5 < k <= t for ev in v]
        recs += eng.update(b, evs, t + 1)
        t += 5
    recs += eng.update(MeterBatch.empty(), [status("H", "Available", ts[-1] + 10)], ts[-1] + 400)
    (r,) = {x.session_id: x for x in recs}.values()
    assert r.quality == ()
    assert r.energy_wh == pytest.approx(11_000 * 40 / 60, rel=1e-6)


def test_transaction_running_before_the_capture_is_one_session_its_stop_ends() -> None:
    """No StartTransaction: the charger was charging when the capture (or the
    collector) began; its 1.6 MeterValues name transaction 901. The car pauses
    (SuspendedEV, no power) for 4 min before the StopTransaction. Before, the
    readings made a power-inferred session without the id that ended at the
    pause, and the stop was rejected as stop_without_session."""
    ch, t0 = "mid", GOE_T0
    frames: list[Frame] = []
    for k in range(61):  # 60 min at 11 kW, every 60 s, then the car is full
        t = t0 + 60 * k
        w = 11000.0 if k < 60 else 0.0
        body = {"connectorId": 1, "transactionId": 901,
                "meterValue": [_mv(t, 500_000 + 11000 * 60 * k / 3600, w)]}  # fmt: skip
        frames.append(_cp(t + 0.3, ch, [2, f"m{k}", "MeterValues", body]))
    frames.append(_status(ch, t0 + 3600.5, "SuspendedEV", "s"))
    stop_ts = t0 + 3840.0
    body = {"transactionId": 901, "meterStop": 511_000, "timestamp": _iso(stop_ts),
            "reason": "EVDisconnected"}  # fmt: skip
    frames.append(_cp(stop_ts + 0.3, ch, [2, "stop", "StopTransaction", body]))
    frames.append(_csms(stop_ts + 0.5, ch, [3, "stop", {"idTagInfo": {"status": "Accepted"}}]))
    frames.append(_status(ch, stop_ts + 1, "Finishing", "f"))
    (r,) = _replay(frames)
    assert r.transaction_id == "901" and r.stop_reason == "transaction"
    assert r.start == t0 and r.stop == pytest.approx(stop_ts)
    assert r.energy_wh == pytest.approx(11_000.0, abs=1.0)
    assert "inferred_start" in r.quality and "inferred_stop" not in r.quality
