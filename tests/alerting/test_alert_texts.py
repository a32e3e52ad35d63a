"""The shipped rules say what happened in physical units, and respect site kinds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from numpy.typing import NDArray

from chargewatch.alerting import AlertEngine, default_rules_dir
from chargewatch.alerting.rulefmt import check_files
from chargewatch.alerting.signals import FAULTS, SIGNALS, empty_frame
from chargewatch.alerting.templates import Template, TemplateError
from chargewatch.model.events import ERROR_CODES
from chargewatch.model.fleet import ChargerSpec, ConnectorIndex, Fleet, SiteSpec

# A reading with its unit ("190 V", "20 kW", "1,875,554 Wh", "92.0 °C", "-17 %"),
# or a duration ("6m", "1m10s", "3h40m").
_PHYSICAL = re.compile(r"\d[\d,.]*\s?[kMG]?(V|A|W|Wh|°C|%)(?![A-Za-z])|\b\d+(h|m|s)\b")
# Owned by the heartbeat work (issue 17, item 4): their texts have no reading yet.
_LIVENESS = {"ChargerOffline", "StaleTelemetry"}

READINGS = {
    "energy_wh": 1_875_554.0,
    "power_w": 20_000.0,
    "current_l1_a": 31.0,
    "current_l2_a": 30.5,
    "current_l3_a": 12.0,
    "voltage_l1_v": 190.0,
    "voltage_l2_v": 230.0,
    "voltage_l3_v": 231.0,
    "temperature_c": 92.0,
    "soc_pct": 54.0,
    "offered_a": 32.0,
    "session_energy_wh": 12_480.0,
    "status_age_s": 40.0,
    "temperature_limit_c": 75.0,
    "temperature_rate_limit_c_per_min": 3.0,
    "voltage_band_pct": 10.0,
    "idle_grace_s": 12_600.0,
    "meter_stuck_min_power_w": 1000.0,
}


def _index(n: int, site: str = "plaza") -> ConnectorIndex:
    fleet = Fleet(
        {"plaza": SiteSpec("plaza"), "home-12": SiteSpec("home-12", kind="residential")},
        {f"CP{i}": ChargerSpec(f"CP{i}", site=site) for i in range(n)},
    )
    return ConnectorIndex(fleet)


def _frame(n: int) -> dict[str, NDArray[Any]]:
    frame = empty_frame(n)
    for name in list(frame):
        if name in ("charger", "connector", "site", "model", "site_kind") or (
            name in SIGNALS and (SIGNALS[name].help.startswith("inventory"))
        ):
            del frame[name]  # the engine fills labels and inventory from the index
    for name, v in READINGS.items():
        frame[name][:] = v
    frame["status"][:] = "Charging"
    frame["error_code"][:] = "NoError"
    for fault in FAULTS:
        frame[f"{fault}_for_s"][:] = 360.0
    return frame


def _fire_all(engine: AlertEngine, frame: dict[str, NDArray[Any]]) -> dict[str, dict[str, str]]:
    fired: dict[str, dict[str, str]] = {}
    for k in range(0, 5 * 3600, 30):  # past every rule's `for` and idle grace
        for t in engine.evaluate(float(k), frame):
            if t.state == "firing":
                fired.setdefault(t.alertname, t.annotations)
    return fired


def test_every_shipped_rule_says_what_happened_in_physical_units_never_a_score() -> None:
    codes = [c for c in ERROR_CODES if c != "NoError"]
    n = 1 + len(codes)
    engine = AlertEngine(default_rules_dir(), _index(n))
    frame = _frame(n)
    for fault in FAULTS:
        frame[fault][0] = True
        frame[f"{fault}_score"][0] = 1.11293  # must not show up anywhere
    frame["error_code"][1:] = codes
    # The signed-reading findings (rules/signatures.yaml) of a session on connector 0.
    frame["signature_invalid"][0] = frame["signed_energy_mismatch"][0] = True
    frame["signature_session_id"][0] = "3f9c2a"
    frame["signature_reason"][0] = "signed 1500.0 Wh, billed 1520.5 Wh"
    fired = _fire_all(engine, frame)
    assert set(fired) == {r.name for r in engine.rules}
    for name, texts in fired.items():
        text = texts["summary"] + " " + texts["description"]
        assert "score" not in text.lower() and "1.11293" not in text, (name, text)
        assert not re.search(r"\bnan\b|unknown|\{\{", text, re.I), (name, text)
        rule = next(r for r in engine.rules if r.name == name)
        if "fault" in rule.labels and name not in _LIVENESS:
            assert _PHYSICAL.search(text), (name, text)
    assert fired["VoltageOutOfBand"]["summary"] == "CP0/1 at plaza: L1-N at 190 V, out of band"
    assert fired["VoltageOutOfBand"]["description"].startswith(
        "L1-N at 190 V for 6m (-17 %; nominal 230 V, band ±10 %, EN 50160)."
    )
    assert fired["MeterStuck"]["description"].startswith(
        "The register stood at 1,875,554 Wh for 6m while 20 kW flowed"
    )
    assert fired["OverTemperature"]["description"].startswith(
        "Temperature 92.0 °C for 6m (limit 75 °C"
    )


@pytest.mark.parametrize(("site", "pages"), [("plaza", True), ("home-12", False)])
def test_idle_blocking_pages_on_a_public_site_and_nobody_on_a_residential_one(
    site: str, pages: bool
) -> None:
    engine = AlertEngine(default_rules_dir(), _index(1, site))
    frame = _frame(1)
    frame["idle_blocking"][:] = True
    fired = _fire_all(engine, frame)
    assert ("IdleBlocking" in fired) is pages


def test_signals_in_templates_are_checked_rendered_and_unknown_said_in_words() -> None:
    t = Template(
        '{{ $signals.voltage_l1_v | printf "%.0f" }} V, $signals.status', {"voltage_l1_v", "status"}
    )
    assert t.signals == ("voltage_l1_v", "status") and t.dynamic and not t.uses_value
    values: dict[str, float | str] = {"voltage_l1_v": 190.4, "status": "Charging"}
    assert t.render({}, 0.0, values.__getitem__) == "190 V, Charging"
    assert t.render({}, 0.0, {"voltage_l1_v": float("nan"), "status": ""}.__getitem__) == (
        "unknown, unknown"  # the unit of an unknown value is dropped
    )
    with pytest.raises(TemplateError, match="unknown signal 'voltage_l1' in \\$signals; did you"):
        Template("{{ $signals.voltage_l1 }}", {"voltage_l1_v"})
    assert (
        Template("{{ $signals.energy_wh | thousands }}").render({}, 0.0, lambda _: 1_875_554.4)
        == "1,875,554"
    )


def test_a_rule_file_reading_unknown_signals_or_signals_in_labels_is_refused_with_its_place(
    tmp_path: Path,
) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(
        "groups:\n- name: g\n  rules:\n  - alert: Hot\n    expr: temperature_c > 80\n"
        "    labels: {severity: warning, phase: '$signals.voltage_worst_phase'}\n"
        "    annotations: {summary: 'at {{ $signals.temprature_c }} C'}\n"
    )
    _, problems = check_files([f])
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (6, "labels.phase"),
        (7, "annotations.summary"),
    ]
    assert "labels cannot read $signals" in problems[0].message
    assert "did you mean 'temperature_c'?" in problems[1].message
