"""CALL/CALLRESULT correlation: 1.6 StartTransaction ids, remediation command results."""

from __future__ import annotations

from typing import Any

from chargewatch.model.events import CommandResult, TransactionEvent
from tests.collector.ocpp_feed import T0, Feed

START = {"connectorId": 2, "idTag": "TAG", "meterStart": 1000, "timestamp": "2026-11-24T03:00:00Z"}
ACCEPTED = {"idTagInfo": {"status": "Accepted"}, "transactionId": 42}


def starts(f: Feed) -> list[tuple[str, int, tuple[str, ...]]]:
    return [
        (e.transaction_id, e.connector, e.flags)
        for e in f.events("TransactionEvent")
        if e.kind == "start"
    ]


def test_start_is_emitted_when_the_result_arrives() -> None:
    f = Feed().call("StartTransaction", START, "s1")
    assert f.events() == []  # the id is not known yet
    f.result("s1", ACCEPTED, recv=T0 + 2)
    assert f.events() == [
        TransactionEvent(
            "CP1",
            2,
            T0,
            T0 + 1,
            "start",
            "42",
            meter_wh=1000.0,
            id_tag="TAG",
            source="ocpp1.6",
        )
    ]
    # The learned id -> connector lets StopTransaction (which names no connector) land.
    f.call(
        "StopTransaction",
        {"transactionId": 42, "meterStop": 2000, "timestamp": "2026-11-24T03:00:05Z"},
        "s2",
    )
    stop = f.events("TransactionEvent")[-1]
    assert (stop.kind, stop.connector, stop.meter_wh, stop.flags) == ("stop", 2, 2000.0, ())
    assert f.reasons() == []


def test_result_before_its_call_is_held_until_the_call_comes() -> None:
    f = Feed().result("s1", ACCEPTED, recv=T0 + 0.5)
    assert f.events() == [] and f.reasons() == []
    f.call("StartTransaction", START, "s1", recv=T0 + 0.7)
    assert starts(f) == [("42", 2, ())]
    assert f.reasons() == []


def test_retransmitted_call_is_rejected_not_decoded_twice() -> None:
    f = Feed().call("StartTransaction", START, "s1").call("StartTransaction", START, "s1")
    f.result("s1", ACCEPTED)
    f.call("StartTransaction", START, "s1")  # after the answer, too
    assert starts(f) == [("42", 2, ())]
    assert f.reasons() == ["duplicate_call", "duplicate_call"]


def test_reused_id_with_new_content_is_a_new_call() -> None:
    # Ids are unique per WebSocket connection only; after a reconnect "1" comes again.
    f = Feed().call("StartTransaction", START, "1").result("1", ACCEPTED)
    f.call("StartTransaction", {**START, "meterStart": 2000}, "1")
    f.result("1", {**ACCEPTED, "transactionId": 43})
    assert starts(f) == [("42", 2, ()), ("43", 2, ())]
    assert f.reasons() == []


def test_reused_id_before_the_answer_gives_up_the_old_call() -> None:
    f = Feed().call("StartTransaction", START, "1")
    f.call("StartTransaction", {**START, "connectorId": 1}, "1").result("1", ACCEPTED)
    assert starts(f) == [("", 2, ("transaction_id_unknown",)), ("42", 1, ())]


def test_second_answer_is_a_duplicate() -> None:
    f = Feed().call("StartTransaction", START, "s1").result("s1", ACCEPTED).result("s1", ACCEPTED)
    assert starts(f) == [("42", 2, ())]
    assert f.reasons() == ["duplicate_result"]


def test_never_answered_start_is_emitted_with_unknown_id_on_next_frame() -> None:
    f = Feed(pending_timeout=60).call("StartTransaction", START, "s1", recv=T0)
    f.call("Heartbeat", {}, "h1", recv=T0 + 59)
    assert starts(f) == []
    f.call("Heartbeat", {}, "h2", recv=T0 + 61)
    assert starts(f) == [("", 2, ("transaction_id_unknown",))]
    f.result("s1", ACCEPTED, recv=T0 + 62)  # too late: now an orphan
    f.decoder.expire(T0 + 200, f.sink)
    assert f.reasons() == ["orphan_result"]
    assert starts(f) == [("", 2, ("transaction_id_unknown",))]


def test_expire_sweeps_silent_chargers() -> None:
    f = Feed(pending_timeout=60).call("StartTransaction", START, "s1", recv=T0)
    f.decoder.expire(T0 + 30, f.sink)
    assert starts(f) == []
    f.decoder.expire(T0 + 61, f.sink)
    assert starts(f) == [("", 2, ("transaction_id_unknown",))]


def test_call_error_and_refused_id_tag_are_flagged() -> None:
    f = Feed().call("StartTransaction", START, "s1")
    f.send([4, "s1", "InternalError", "db down", {}], source="csms")
    f.call("StartTransaction", START, "s2")
    f.result("s2", {"idTagInfo": {"status": "Invalid"}, "transactionId": 7})
    assert starts(f) == [
        ("", 2, ("transaction_id_unknown", "call_error")),
        ("7", 2, ("id_tag_invalid",)),
    ]


def test_bad_start_result_is_rejected_and_the_start_still_emitted() -> None:
    f = Feed().call("StartTransaction", START, "s1").result("s1", {"transactionId": "x"})
    assert f.reasons() == ["schema_violation"]
    assert "idTagInfo" in f.sink.rejects[0].detail
    assert starts(f) == [("", 2, ("transaction_id_unknown",))]


def test_answers_to_other_calls_are_consumed_silently() -> None:
    f = Feed().call("Heartbeat", {}, "h").result("h", {"currentTime": "2026-11-24T03:00:01Z"})
    f.call("Authorize", {"idTag": "A"}, "a").result("a", {"idTagInfo": {"status": "Accepted"}})
    f.decoder.expire(T0 + 1000, f.sink)
    assert f.reasons() == []
    assert len(f.events()) == 1  # the heartbeat


def test_csms_calls_answered_on_cp_are_not_orphans() -> None:
    f = Feed().send([2, "r1", "RemoteStartTransaction", {"idTag": "A"}], source="csms")
    f.send([3, "r1", {"status": "Accepted"}], source="cp")
    f.decoder.expire(T0 + 1000, f.sink)
    assert f.reasons() == [] and f.events() == []


def test_chargers_do_not_share_correlation_state() -> None:
    f = Feed().call("StartTransaction", START, "s1", charger="A")
    f.result("s1", ACCEPTED, charger="B")  # same id, other charger: not an answer for A
    f.send(None, raw=b"\x00garbage", charger="B")
    f.send([2, "s1", "StartTransaction", {"bad": 1}], charger="B")
    f.result("s1", {**ACCEPTED, "transactionId": 43}, charger="A")
    assert [(e.charger, e.transaction_id) for e in f.events("TransactionEvent")] == [("A", "43")]
    assert f.reasons() == ["malformed_json", "schema_violation"]


def test_pending_calls_are_bounded_per_charger() -> None:
    f = Feed(max_pending=4).call("StartTransaction", START, "s0")
    for i in range(1, 5):
        f.call("Heartbeat", {}, f"h{i}")
    assert starts(f) == [("", 2, ("transaction_id_unknown",))]


def test_early_answers_are_bounded_and_expire_as_orphans() -> None:
    f = Feed(max_pending=2)
    for i in range(3):
        f.result(f"x{i}", {})
    assert f.reasons() == ["orphan_result"]
    f.decoder.expire(T0 + 1000, f.sink)
    assert f.reasons() == ["orphan_result"] * 3
    assert "'x1'" in f.sink.rejects[1].detail


def test_stop_of_unknown_transaction_keeps_readings_without_rows() -> None:
    f = Feed().call(
        "StopTransaction",
        {
            "transactionId": 9,
            "meterStop": 300,
            "timestamp": "2026-11-24T03:00:00Z",
            "reason": "Remote",
            "transactionData": [
                {
                    "timestamp": "2026-11-24T03:00:00Z",
                    "sampledValue": [{"value": "300", "context": "Transaction.End"}],
                }
            ],
        },
    )
    reading, stop = f.events()
    assert (reading.connector, reading.energy_wh, reading.flags) == (
        0,
        300.0,
        ("connector_unknown",),
    )
    assert (stop.connector, stop.reason, stop.flags) == (0, "Remote", ("connector_unknown",))
    assert f.rows() == []


def test_meter_values_with_transaction_id_teach_the_connector() -> None:
    f = Feed().call(
        "MeterValues",
        {
            "connectorId": 3,
            "transactionId": 5,
            "meterValue": [{"timestamp": "2026-11-24T03:00:00Z", "sampledValue": [{"value": "1"}]}],
        },
    )
    f.call(
        "StopTransaction",
        {"transactionId": 5, "meterStop": 9, "timestamp": "2026-11-24T03:00:00Z"},
        "2",
    )
    assert f.events("TransactionEvent")[0].connector == 3


# ------------------------------------------------------------------ commands


def reset(f: Feed, msg_id: str, **kw: Any) -> Feed:
    return f.send([2, msg_id, "Reset", {"type": "Soft"}], source="command", **kw)


def test_command_result_arrives_on_cp() -> None:
    f = reset(Feed(), "c1").send([3, "c1", {"status": "Accepted"}], recv=T0 + 3)
    assert f.events() == [
        CommandResult("CP1", T0 + 3, T0 + 3, "Reset", "c1", "Accepted", source="ocpp1.6")
    ]


def test_command_call_error_and_timeout() -> None:
    f = reset(Feed(pending_timeout=30), "c1", recv=T0)
    f.send([4, "c1", "NotSupported", "no soft reset", {}], recv=T0 + 1)
    reset(f, "c2", recv=T0 + 2)
    f.decoder.expire(T0 + 40, f.sink)
    error, timeout = f.events()
    assert (error.status, error.error_code, error.detail) == (
        "CallError",
        "NotSupported",
        "no soft reset",
    )
    assert (timeout.message_id, timeout.status, timeout.ts) == ("c2", "Timeout", T0 + 40)
    assert timeout.source == "ocpp1.6"


def test_note_command_when_the_command_topic_is_not_subscribed() -> None:
    f = Feed("2.0.1")
    f.decoder.note_command("CP1", "2.0.1", "c9", "Reset", T0)
    f.send([3, "c9", {"status": "Scheduled"}])
    (result,) = f.events()
    assert (result.action, result.status, result.source) == ("Reset", "Scheduled", "ocpp2.0.1")


def test_answers_are_not_published_on_the_command_topic() -> None:
    f = Feed().send([3, "c1", {}], source="command")
    assert f.reasons() == ["unexpected_frame"]
