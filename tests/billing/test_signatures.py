"""Signed readings (OCMF) of a session checked: chargewatch.sessions.signatures.

Real records: the S.A.F.E. reference samples (tests/fixtures/ocmf/reference,
with their expected verdicts: ``*fail*`` files are deliberately broken) and the
public captures in tests/fixtures/ocmf. Tampering, gaps and key rotation are
shown on records signed in the test (tests/billing/ocmf_kit.py).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chargewatch.cli import main
from chargewatch.core.resources import shared_data_dir
from chargewatch.ingest.ocpp.signed import decode_signed
from chargewatch.model.events import SignedReading
from chargewatch.model.fleet import MeterKey
from chargewatch.sessions.signatures import check_records, check_session, key_hex
from tests.billing.ocmf_kit import Meter, tamper

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "tests" / "fixtures" / "ocmf"
REFERENCE = CAPTURES / "reference"  # the team's reference samples (PROVENANCE.md there)

# file -> (exit status of `ocmf verify`, what a session made of it would be)
EXPECTED = {
    "brainpoolP256r1.xml": (0, "verified"),
    "test_ocmf_ebee_01.xml": (0, "verified"),
    "test_ocmf_keba_kcp30.xml": (0, "verified"),
    "test_ocmf_keba_kcp30_fail.xml": (1, "invalid"),  # TM of B changed after signing
    "second_key_fail_ocmf.xml": (1, "invalid"),  # the end record's key is another meter's
}

T0 = "2026-03-02T08:00:00,000+0000 S"
T1 = "2026-03-02T09:30:00,000+0000 S"


def _s(ocmf: str, key: str = "") -> SignedReading:
    return decode_signed(ocmf, context="", public_key=key)


def test_the_reference_folder_holds_the_samples_we_expect() -> None:
    assert sorted(p.name for p in REFERENCE.glob("*.xml")) == sorted(EXPECTED)
    # The copy is the team's reference set as it is, wherever that set is present.
    team = shared_data_dir().parent / "reference" / "ocmf"
    if team.is_dir():
        for p in team.iterdir():
            assert (REFERENCE / p.name).read_bytes() == p.read_bytes(), p.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_reference_sample_gets_its_expected_verdict(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, status = EXPECTED[name]
    assert main(["ocmf", "verify", str(REFERENCE / name)]) == code
    out = capsys.readouterr().out
    assert f": {status}" in out
    assert main(["ocmf", "verify", "--json", str(REFERENCE / name)]) == code
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all({"signature_valid", "meter_serial", "time", "value", "unit",
                         "status", "pagination"} <= set(r) for r in rows)  # fmt: skip
    assert all(r["status"] == "verified" for r in rows) == (code == 0)


def test_tampered_reference_sample_names_the_failed_signature(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["ocmf", "verify", "--json", str(REFERENCE / "test_ocmf_keba_kcp30_fail.xml")])
    (row,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert row["signature_valid"] is False and row["status"] == "invalid"
    assert row["meter_serial"] == "17619300" and row["pagination"] == "T32"
    assert (row["value"], row["unit"]) == ("0.2597", "kWh")
    assert "does not verify" in row["reason"]


def test_second_key_is_a_curve_mismatch_of_the_end_record(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["ocmf", "verify", "--json", str(REFERENCE / "second_key_fail_ocmf.xml")])
    begin, end = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert begin["signature_valid"] is True and begin["status"] == "inconsistent"
    assert end["signature_valid"] is False and "curve mismatch" in end["reason"]


def test_raw_ocmf_string_and_key_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = Meter()
    path = tmp_path / "one.ocmf"
    path.write_text(m.record(7, ("B", "1.000", T0), ("E", "2.500", T1)) + "\n")
    assert main(["ocmf", "verify", str(path), "--key", m.public_hex]) == 0
    assert main(["ocmf", "verify", str(path)]) == 1  # no key: cannot be verified
    assert "no public key" in capsys.readouterr().out
    assert main(["ocmf", "verify", str(path), "--key", Meter().public_hex]) == 1  # another key


@pytest.mark.parametrize(
    "text",
    [
        "EDL40|0001|signed-with-something-else",  # not OCMF: another signed-data format
        '<?xml version="1.0"?><values><value><signedData format="EDL">AP///w==</signedData>'
        "</value></values>",
        "<values><value>",  # not well-formed
        "",
    ],
)
def test_not_ocmf_or_unreadable_exits_2(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.txt"
    path.write_text(text)
    assert main(["ocmf", "verify", "--json", str(path)]) == 2
    out = capsys.readouterr().out
    assert '"unreadable"' in out and "reason" in out
    assert main(["ocmf", "verify", str(tmp_path / "missing.xml")]) == 2


def test_real_captures_verify_with_the_keys_found_beside_them() -> None:
    """Every public record not deliberately broken, with a key, has a valid
    signature, but for five of the S.A.F.E. set whose own test suite expects
    them to fail (named below, each with what is wrong). (As a session, many
    KEBA test-bench records are invalid all the same: their clock is unset, U.)"""
    known_bad = {
        "log4j_test3.xml": "SD is base64 without SE",
        "src/test/resources/test.xml": "signature does not match",
        "OCMF-receipt-with_import_and_export.xml": "key is not a DER EC key",
        "OCMF-receipt-with_publickey_and_data.xml": "key is not a DER EC key",
        "test_ocmf_ebee_02.xml": "signature does not match",
    }
    verified = failed = 0
    for path in sorted(CAPTURES.glob("ocmf_*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            key = d.get("public_key") or d.get("public_key_b64") or ""
            if not isinstance(key, str) or d.get("expected_invalid_by_filename"):
                continue
            if not key_hex(key):  # none, or the log4j_test*.xml keys with a JNDI lookup before them
                continue
            data = d.get("signed_meter_data_b64") or d["ocmf"]
            got = check_records([_s(data, key)])
            if all(r.signature_valid for r in got.readings):
                verified += 1
            else:
                failed += 1
                why = got.readings[0].detail
                assert any(d["source"].endswith(k) for k in known_bad), (d["source"], why)
    assert verified >= 360 and failed <= len(known_bad)


def _session(*records: str, key: str, billed_wh: float | None = 1500.0, **kw: object) -> object:
    pinned = (MeterKey(key, charger="CP-1"),)
    return check_session([_s(r) for r in records], charger="CP-1", keys=pinned, billed_wh=billed_wh)


def test_start_and_end_records_bound_to_the_session_verify_with_the_pinned_key() -> None:
    m = Meter()
    got = check_session(
        [_s(m.record(40, ("B", "1.000", T0))), _s(m.record(41, ("E", "2.500", T1)))],
        charger="CP-1",
        keys=(MeterKey(m.public_hex, charger="CP-1"),),
        billed_wh=1500.0,
    )
    assert (got.status, got.reason, got.key_pinned) == ("verified", "", True)
    assert got.signed_energy_wh == pytest.approx(1500.0) and got.resolution_wh == 1.0
    assert not got.energy_mismatch
    assert [(r.reason, r.value, r.unit, r.pagination) for r in got.readings] == [
        ("B", "1.000", "kWh", "T40"),
        ("E", "2.500", "kWh", "T41"),
    ]


def test_tampered_reading_is_invalid() -> None:
    m = Meter()
    end = tamper(m.record(41, ("E", "2.500", T1)), "2.500", "3.500")
    got = check_session(
        [_s(m.record(40, ("B", "1.000", T0))), _s(end)],
        charger="CP-1",
        keys=(MeterKey(m.public_hex, charger="CP-1"),),
        billed_wh=2500.0,
    )
    assert got.status == "invalid" and "does not verify with the pinned key" in got.reason
    assert [r.signature_valid for r in got.readings] == [True, False]


def test_key_mismatch_pinned_key_wins_over_the_key_sent() -> None:
    m, other = Meter(), Meter()
    recs = [m.record(1, ("B", "1.000", T0)), m.record(2, ("E", "2.500", T1))]
    sent = [decode_signed(r, context="", public_key=m.public_hex) for r in recs]
    # The charger's own key verifies (not pinned) ...
    got = check_session(sent, charger="CP-1", billed_wh=1500.0)
    assert (got.status, got.key_pinned) == ("verified", False)
    # ... but the inventory pins another key for this charger: invalid.
    got = check_session(sent, charger="CP-1", keys=(MeterKey(other.public_hex, "CP-1"),))
    assert got.status == "invalid" and got.key_pinned is False


def test_no_key_anywhere_is_key_unknown() -> None:
    m = Meter()
    got = check_session(
        [_s(m.record(1, ("B", "1.000", T0), ("E", "2.000", T1)))], charger="CP-9", billed_wh=1000.0
    )
    assert got.status == "key_unknown" and "none pinned, none sent" in got.reason


def test_key_rotation_the_key_valid_at_the_readings_time() -> None:
    old, new = Meter(), Meter()
    cut = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    keys = (
        MeterKey(old.public_hex, meter_serial=old.serial, valid_until=cut),
        MeterKey(new.public_hex, meter_serial=new.serial, valid_from=cut),
    )
    before = "2026-02-27T08:00:00,000+0000 S", "2026-02-27T09:00:00,000+0000 S"
    got = check_session(
        [_s(old.record(5, ("B", "1.0", before[0]), ("E", "2.0", before[1])))],
        charger="CP-1", keys=keys, billed_wh=1000.0,
    )  # fmt: skip
    assert (got.status, got.key_pinned) == ("verified", True)
    got = check_session(
        [_s(new.record(9, ("B", "1.0", T0), ("E", "2.0", T1)))], charger="CP-1", keys=keys
    )
    assert got.status == "verified"
    # The old meter's key used after its end: not valid then.
    got = check_session(
        [_s(old.record(6, ("B", "1.0", T0), ("E", "2.0", T1)))], charger="CP-1", keys=keys[:1]
    )
    assert got.status == "key_unknown" and "valid at the reading's time" in got.reason


def test_pagination_gap_is_invalid() -> None:
    m = Meter()
    key = (MeterKey(m.public_hex, charger="CP-1"),)
    recs = [_s(m.record(40, ("B", "1.0", T0))), _s(m.record(43, ("E", "2.0", T1)))]
    got = check_session(recs, charger="CP-1", keys=key, billed_wh=1000.0)
    assert got.status == "invalid" and got.reason == (
        "pagination gap T40 -> T43: 2 signed record(s) missing"
    )


def test_one_transaction_record_signed_again_shares_its_page() -> None:
    # A LEM DCBM (real Sungrow IDC180E stops, tests/fixtures/real_ocpp) signs
    # its start record (B, C) and its stop record (the same B, then E) under
    # one page, "T608": versions of one transaction's record, not two records.
    m = Meter()
    key = (MeterKey(m.public_hex, charger="CP-1"),)
    start = m.record(608, ("B", "10747.296", T0), ("C", "10747.296", T0))
    stop = m.record(608, ("B", "10747.296", T0), ("E", "10747.765", T1))
    got = check_session([_s(start), _s(stop)], charger="CP-1", keys=key, billed_wh=469.0)
    assert (got.status, got.reason) == ("verified", "")
    assert got.signed_energy_wh == pytest.approx(469.0)
    # Two records of one page with different begins are two transactions' records.
    other = m.record(608, ("B", "10700.000", T0), ("E", "10747.765", T1))
    got = check_session([_s(start), _s(other)], charger="CP-1", keys=key, billed_wh=469.0)
    assert got.status == "invalid" and got.reason == "two different records with pagination T608"


def test_other_meter_status_and_clock_are_invalid() -> None:
    m = Meter()
    key = (MeterKey(m.public_hex, charger="CP-1"),)
    begin = _s(m.record(1, ("B", "1.0", T0)))
    other = _s(m.record(2, ("E", "2.0", T1), serial="OTHER-METER"))
    assert "different meters" in check_session([begin, other], charger="CP-1", keys=key).reason
    bad_status = _s(m.record(2, ("E", "2.0", T1), status="E"))
    got = check_session([begin, bad_status], charger="CP-1", keys=key)
    assert got.status == "invalid" and "meter status E" in got.reason
    no_clock = _s(m.record(2, ("E", "2.0", "1970-01-01T00:10:00,000+0000 U")))
    assert "time status U" in check_session([begin, no_clock], charger="CP-1", keys=key).reason


def test_only_a_start_is_incomplete_and_other_formats_are_incomplete() -> None:
    m = Meter()
    key = (MeterKey(m.public_hex, charger="CP-1"),)
    got = check_session([_s(m.record(1, ("B", "1.0", T0)))], charger="CP-1", keys=key)
    assert (got.status, got.reason) == ("incomplete", "no signed end reading")
    edl = decode_signed("AP///wAAAAEAAA==", context="Transaction.End")
    got = check_session([edl], charger="CP-1", keys=key)
    assert got.status == "incomplete" and "not readable" in got.reason
    assert check_session([], charger="CP-1").status == "unsigned"


def test_malformed_ocmf_is_invalid_and_never_raises() -> None:
    # A TM without a UTC offset parses, but pyocmf refuses to print it: this
    # made the decoder raise before.
    naive = ('OCMF|{"FV":"1.0","PG":"T1","MS":"M","RD":[{"TM":"2021-01-01T00:00:00,000 S",'
             '"TX":"B","RV":1,"RU":"kWh","ST":"G"}]}|{"SD":"3006020101020101"}')  # fmt: skip
    assert "does not parse" in decode_signed(naive, context="").error
    for raw in ("OCMF|{not json|{}", 'OCMF|{"RD":5}|x', "OCMF|{}|{}", naive):
        got = check_session([decode_signed(raw, context="")], charger="CP-1")
        assert got.status in ("invalid", "incomplete") and got.reason


def test_signed_delta_against_billed_energy_within_the_resolution() -> None:
    m = Meter()
    key = (MeterKey(m.public_hex, charger="CP-1"),)
    recs = [_s(m.record(1, ("B", "1.00", T0))), _s(m.record(2, ("E", "2.50", T1)))]
    # RV written to 0.01 kWh: the meter's resolution is 10 Wh.
    ok = check_session(recs, charger="CP-1", keys=key, billed_wh=1508.0)
    assert ok.resolution_wh == 10.0 and not ok.energy_mismatch
    off = check_session(recs, charger="CP-1", keys=key, billed_wh=1520.5)
    assert off.status == "verified" and off.energy_mismatch
    assert off.signed_energy_wh == pytest.approx(1500.0)


def test_key_formats() -> None:
    m = Meter()
    der = bytes.fromhex(m.public_hex)
    uk = json.dumps({"UK": m.public_hex})
    for form in (
        m.public_hex,
        m.public_hex.lower(),
        " ".join(m.public_hex[i : i + 4] for i in range(0, len(m.public_hex), 4)),
        base64.b64encode(der).decode(),
        uk,
        base64.b64encode(uk.encode()).decode(),
    ):
        assert key_hex(form) == m.public_hex, form
    assert key_hex("") == "" and key_hex("not a key!") == ""


def test_signed_readings_survive_the_journal_and_the_checkpoint() -> None:
    """A restart (journal replay, checkpoint) keeps the decoded signed readings."""
    from chargewatch.collector.session_stage import _decode, _encode  # noqa: PLC0415
    from chargewatch.model.events import MeterReading  # noqa: PLC0415
    from chargewatch.sessions.session_state import (  # noqa: PLC0415
        SessionState,
        session_from_dict,
        session_to_dict,
    )

    m = Meter()
    signed = decode_signed(m.record(3, ("E", "2.0", T1)), context="Transaction.End")
    ev = MeterReading("CP-1", 1, 1.0, 2.0, 2000.0, None, context="Transaction.End",
                      signed_data=signed.raw, signed=signed)  # fmt: skip
    assert _decode(*_encode(ev)) == ev
    s = SessionState("sid", "CP-1", 1, "tx", 0.0, "transaction")
    s.keep_signed(signed)
    s.keep_signed(signed)  # once
    back = session_from_dict(json.loads(json.dumps(session_to_dict(s))))
    assert back.signed == (signed,)
