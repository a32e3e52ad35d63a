"""A CALL's payload checked against the official schema, bad items cut out.

A schema violation rejects the whole frame, except inside the containers of
independent items (meterValues, NotifyEvent eventData): there a bad item, or a
bad sampledValue of an item, is rejected on its own and the rest is checked
again without it. The value-type quirks are repaired first (:mod:`.quirks`).
"""

from __future__ import annotations

__all__ = ["describe", "validated"]

from collections import Counter
from typing import Any, Final

from chargewatch.ingest.ocpp.framing import Frame
from chargewatch.ingest.ocpp.quirks import repair
from chargewatch.ingest.ocpp.schemas import SchemaError, schemas

#: Where the independent items of a CALL are, by (version, action).
_CONTAINER: Final = {
    ("1.6", "MeterValues"): "meterValue",
    ("1.6", "StopTransaction"): "transactionData",
    ("2.0.1", "MeterValues"): "meterValue",
    ("2.0.1", "TransactionEvent"): "meterValue",
}
_CONTAINER_REQUIRED: Final = {("1.6", "MeterValues"), ("2.0.1", "MeterValues")}
_NOTIFY = ("2.0.1", "NotifyEvent")


def validated(
    f: Frame, action: str, payload: dict[str, Any], quirks: Counter[str]
) -> dict[str, Any] | None:
    """The payload if it (or what is left after cutting out bad items) is valid."""
    table = schemas(f.version)
    schema = table.request(action)
    if schema is None:  # listed as an action but no schema: nothing to check
        return payload
    errors = table.errors(schema, payload)
    if not errors:
        return payload
    if repair(f.version, payload, errors, quirks):
        errors = table.errors(schema, payload)
        if not errors:
            return payload
    container = _CONTAINER.get((f.version, action))
    if (f.version, action) == _NOTIFY:
        container = "eventData"
    if container is None:
        f.reject("schema_violation", describe(errors))
        return None
    bad_items, bad_samples = _item_errors(errors, container)
    if bad_items is None:
        f.reject("schema_violation", describe(errors))
        return None
    kept = _kept_items(f, payload[container], bad_items, bad_samples)
    pruned = {**payload, container: kept}
    if not kept:
        if (f.version, action) in _CONTAINER_REQUIRED or (f.version, action) == _NOTIFY:
            return None  # every item was rejected on its own
        del pruned[container]
    errors = table.errors(schema, pruned)
    if errors:
        f.reject("schema_violation", describe(errors))
        return None
    return pruned


def _item_errors(
    errors: list[SchemaError], container: str
) -> tuple[dict[int, list[SchemaError]] | None, dict[tuple[int, int], list[SchemaError]]]:
    """Errors by item and by (item, sample); None for items if any is outside the container."""
    bad_items: dict[int, list[SchemaError]] = {}
    bad_samples: dict[tuple[int, int], list[SchemaError]] = {}
    frame_level = False
    for e in errors:
        p = e.path
        if len(p) >= 2 and p[0] == container and isinstance(p[1], int):
            if len(p) >= 4 and p[2] == "sampledValue" and isinstance(p[3], int):
                bad_samples.setdefault((p[1], p[3]), []).append(e)
            else:
                bad_items.setdefault(p[1], []).append(e)
        else:
            frame_level = True
    return (None if frame_level else bad_items), bad_samples


def _kept_items(
    f: Frame,
    items: list[Any],
    bad_items: dict[int, list[SchemaError]],
    bad_samples: dict[tuple[int, int], list[SchemaError]],
) -> list[Any]:
    """The items without the bad ones, each without its bad samples; rejects what goes."""
    kept: list[Any] = []
    for i, item in enumerate(items):
        if i in bad_items:
            f.reject("schema_violation", describe(bad_items[i]), i)
            continue
        drop = [j for (k, j) in bad_samples if k == i]
        if drop:
            for j in drop:
                f.reject("schema_violation", describe(bad_samples[(i, j)]), i, j)
            samples = [s for j, s in enumerate(item["sampledValue"]) if j not in drop]
            if samples:
                kept.append({**item, "sampledValue": samples})
            continue
        kept.append(item)
    return kept


def describe(errors: list[SchemaError]) -> str:
    """The first few schema errors, for a rejection's detail."""
    shown = "; ".join(str(e) for e in errors[:3])
    return shown + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")
