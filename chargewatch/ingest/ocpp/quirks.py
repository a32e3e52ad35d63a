"""Accepted deviations from the OCPP spec: their names, and the value-type repair.

Real chargers' deviations that are safe to accept (see
``tests/collector/testdata/ocpp/README.md``) are normalised and counted in
``OcppDecoder.quirks`` under the names of :data:`QUIRKS`. Most are counted
where they are met (timestamps in :mod:`.context`, units in :mod:`.units`,
phases and signed data in :mod:`.meter`, a boot answer's heartbeat interval in
:mod:`.intervals`); the value-type quirks are repaired
here, in place, before the schema check is run again.
"""

from __future__ import annotations

__all__ = ["QUIRKS", "repair"]

from collections import Counter
from typing import Any, Final

from chargewatch.ingest.ocpp.schemas import SchemaError

#: Accepted deviations, counted in ``OcppDecoder.quirks`` (name -> what it is).
QUIRKS: Final = {
    "numeric_value": "1.6 sampledValue.value sent as a JSON number instead of a string",
    "string_value": "2.0.1 sampledValue.value sent as a numeric string instead of a number",
    "timestamp_without_offset": "timestamp without Z/offset, read as UTC",
    "unit_defaulted": "non-energy sample without unit: its natural unit assumed, not Wh",
    "power_summed_from_phases": "per-phase Power.Active.Import only: summed (lbbrhzn/ocpp#1709)",
    "signed_value_extra": "more than one signed value in a meterValue: the first is kept",
    "signed_value_undecodable": (
        "signed value that is not decodable OCMF: its number is not read as a register"
        " (the values beside it are kept)"
    ),
    "unit_case": "2.0.1 unit in unusual case (kwh): matched case-insensitively",
    "stop_register_kwh_labelled_wh": (
        "1.6 StopTransaction whose transactionData registers labelled Wh read 1/1000 of its"
        " meterStop (a Sungrow IDC180E's Transaction.Begin/End): read as kWh"
    ),
    "boot_heartbeat_interval": (
        "BootNotification answer with heartbeatInterval instead of the required interval"
        " (a CSMS's deviation, seen answering an Alfen Eve): the interval learned from it"
    ),
}


def repair(
    version: str, payload: dict[str, Any], errors: list[SchemaError], quirks: Counter[str]
) -> bool:
    """Normalise the accepted value-type quirks in place; True if anything changed."""
    changed = False
    for e in errors:
        p = e.path
        if len(p) != 5 or p[2] != "sampledValue" or p[4] != "value":
            continue
        try:
            sample = payload[str(p[0])][p[1]]["sampledValue"][p[3]]
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(sample, dict):
            continue
        value = sample.get("value")
        if version == "1.6" and isinstance(value, int | float) and not isinstance(value, bool):
            sample["value"] = repr(value)  # 1.6 wants a string; the number is exact
            quirks["numeric_value"] += 1
            changed = True
        elif version == "2.0.1" and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                continue
            sample["value"] = number
            quirks["string_value"] += 1
            changed = True
    return changed
