"""The fault vocabulary is defined once (chargewatch.model.faults); every registry follows it."""

from __future__ import annotations

import yaml

from chargewatch.alerting import AlertEngine, default_rules_dir
from chargewatch.alerting.signals import SIGNALS
from chargewatch.detectors import DETECTORS
from chargewatch.model.faults import FAULTS
from chargewatch.simulator.fault_models import TELEMETRY_FAULTS


def test_detectors_simulator_signals_and_default_rules_cover_the_vocabulary() -> None:
    assert list(DETECTORS) == list(FAULTS)
    assert set(TELEMETRY_FAULTS) == set(FAULTS)
    assert all(f in SIGNALS and f"{f}_score" in SIGNALS for f in FAULTS)
    labels = {
        rule.get("labels", {}).get("fault")
        for f in default_rules_dir().glob("*.yaml")
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(FAULTS) <= labels
    assert AlertEngine(default_rules_dir()).rules  # and the shipped rules load
