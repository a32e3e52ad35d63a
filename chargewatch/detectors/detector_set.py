"""Runs every detector over each batch and exposes signals and findings.

``signals[fault]`` is a bool array (active now) and ``signals[fault + "_score"]``
a float array (NaN = unknown), one entry per connector of the index; alert
rules reference exactly these names.

``snapshot()`` / ``restore()``: what the detectors learned that a restart must
not lose (today the liveness detectors' heartbeat and meter intervals, the
chargers offline at the snapshot: an outage goes on after it, and the
sequencer's reporting mode per connector with its interval in each mode, under
``"sequencer"``: a session that ends across a restart still switches the
interval to the idle one), keyed
by charger id so that it survives a new index and can be cut by charger
(``{"version": 1, "chargers": {id: {"connectors": [...], fault: {...}}}}``).
The collector keeps it (collector/liveness_store.py).
"""

from __future__ import annotations

__all__ = ["DETECTORS", "SNAPSHOT_VERSION", "DetectorSet"]

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.base import Detector, SiteModels
from chargewatch.detectors.charging import (
    ChargingInterrupted,
    FailedStart,
    IdleBlocking,
    StatusFlapping,
)
from chargewatch.detectors.electrical import (
    OverCurrent,
    OverTemperature,
    PhaseImbalance,
    PhaseLoss,
    PowerOscillation,
    VoltageOutOfBand,
)
from chargewatch.detectors.episodes import Finding
from chargewatch.detectors.liveness import ChargerOffline, ClockSkew, StaleTelemetry
from chargewatch.detectors.meter import MeterMismatch, MeterRegression, MeterStuck, MeterUnitError
from chargewatch.detectors.params import FAULTS, DetectorConfig
from chargewatch.detectors.sequencer import STATUS_CODE, UNKNOWN_STATUS, Events, Frame, Sequencer
from chargewatch.model.batch import MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex

DETECTORS: dict[str, type[Detector]] = {
    cls.fault: cls
    for cls in (
        ChargerOffline,
        StaleTelemetry,
        MeterStuck,
        MeterRegression,
        MeterMismatch,
        MeterUnitError,
        OverTemperature,
        OverCurrent,
        VoltageOutOfBand,
        PhaseLoss,
        PhaseImbalance,
        ChargingInterrupted,
        PowerOscillation,
        ClockSkew,
        IdleBlocking,
        FailedStart,
        StatusFlapping,
    )
}
assert tuple(DETECTORS) == FAULTS  # the vocabulary and the implementations agree

SNAPSHOT_VERSION = 1
# A charger's entry in the snapshot beside its detectors' (no fault's name):
# the sequencer's mode state. A collector that predates it ignores the key.
SEQUENCER_KEY = "sequencer"


class DetectorSet:
    """All detectors (or ``faults``), one shared sequencer, one findings list."""

    def __init__(
        self,
        config: DetectorConfig | None = None,
        *,
        faults: Iterable[str] = FAULTS,
        index: ConnectorIndex | None = None,
    ) -> None:
        self.config = config or DetectorConfig()
        self.index = index  # for use as a collector pipeline stage (on_batch)
        self.findings: list[Finding] = []
        wanted = list(faults)
        unknown = [f for f in wanted if f not in DETECTORS]
        if unknown:
            raise ValueError(f"faults: unknown {unknown}; expected names from {list(FAULTS)}")
        self.detectors: dict[str, Detector] = {
            f: DETECTORS[f](self.config, self.findings) for f in wanted
        }
        self._seq = Sequencer()
        self._counters: dict[str, int] = {}
        self._by_charger: dict[str, tuple[int, ...]] = {}
        self._indexed = 0
        self.n = 0

    def _index(self, index: ConnectorIndex) -> None:
        # Charger -> connector ids, for charger-wide events; grows with the index.
        # Tuples: a charger's 1-4 ids take 40-64 B so, ~90 B as a list.
        by = self._by_charger
        for c in range(self._indexed, len(index)):
            charger = index.charger_of(c)
            by[charger] = (*by.get(charger, ()), c)
        self._indexed = len(index)

    def update(
        self, batch: MeterBatch, events: Sequence[Event], index: ConnectorIndex, now: float
    ) -> None:
        """Consume one batch of meter rows and events; ``now`` is the caller's clock."""
        self._index(index)
        n = len(index)
        self.n = max(self.n, n)
        ev = Events.build(events, index, self._by_charger, self._counters)
        # Garbage values (1e308, inf) overflow in ratios; they are counted by the
        # sequencer and their NaN/inf results are judged unknown, so no warnings.
        with np.errstate(all="ignore"):
            frame = self._seq.frame(batch, ev, n, self._counters)
            self._ensure(index, frame.n_conn)
            for d in self.detectors.values():
                d.update(frame, ev, index, now)

    def _ensure(self, index: ConnectorIndex, n: int) -> None:
        grow = [d for d in self.detectors.values() if d.n < n]
        if grow:
            # New connectors' site and model, worked out once for every detector.
            keys = SiteModels(index, grow[0].n, n)
            for d in grow:
                d.ensure(index, n, keys)

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        """The collector pipeline's Stage protocol: ``update`` with the set's index."""
        self.update(batch, events, self._own_index(), now)

    def _own_index(self) -> ConnectorIndex:
        if self.index is None:
            raise ValueError("DetectorSet(index=...) is needed to run as a pipeline stage")
        return self.index

    def snapshot(self) -> dict[str, Any]:
        """What the detectors learned, per charger (JSON-able); see the module doc."""
        index = self._own_index()
        self._index(index)
        chargers: dict[str, dict[str, Any]] = {}
        for name, d in self.detectors.items():
            for charger, part in d.snapshot(index).items():
                chargers.setdefault(charger, {})[name] = part
        for charger, modes in self._seq.snapshot_modes(index).items():
            chargers.setdefault(charger, {})[SEQUENCER_KEY] = modes
        for charger, entry in chargers.items():
            # The charger's connectors, so that a new index has them before
            # any message: charger-wide state lives on one of them.
            entry["connectors"] = sorted(index.keys[c][1] for c in self._by_charger[charger])
        return {"version": SNAPSHOT_VERSION, "chargers": chargers}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back what :meth:`snapshot` gave (or a part of it, cut by charger),
        replacing what the detectors knew of those chargers. ValueError: a
        snapshot of another version."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown detector snapshot version {data.get('version')!r}")
        index = self._own_index()
        chargers: Mapping[str, Any] = data.get("chargers", {})
        for charger, entry in chargers.items():
            for connector in entry.get("connectors", ()):
                index.id(str(charger), int(connector))
        self._index(index)
        self.n = max(self.n, len(index))
        with np.errstate(all="ignore"):
            self._ensure(index, self.n)
            for name, d in self.detectors.items():
                part = {c: e[name] for c, e in chargers.items() if name in e}
                if part:
                    d.restore(part, index)
            modes = {c: e[SEQUENCER_KEY] for c, e in chargers.items() if SEQUENCER_KEY in e}
            if modes:
                self._seq.restore_modes(modes, index, self.n)

    def resume(self, connectors: Mapping[tuple[str, int], tuple[str, bool]], now: float) -> int:
        """Connectors' state as kept elsewhere, for a collector that starts (or
        takes connectors over) without having heard it: per (charger,
        connector), the status the charger last reported (the fleet state) and
        whether a transaction is open on it (the session ledger), as of
        ``now``. A charger reports these once, at a change; without them a
        connector mid-transaction is not watched for missing meter values
        until its next status. Connectors whose status is known here already
        keep it. Returns how many connectors were given one."""
        index = self._own_index()
        conns: list[int] = []
        codes: list[int] = []
        in_tx: list[bool] = []
        for (charger, connector), (status, open_tx) in connectors.items():
            code = STATUS_CODE.get(status, UNKNOWN_STATUS)
            if code != UNKNOWN_STATUS or open_tx:
                conns.append(index.id(charger, connector))
                codes.append(code)
                in_tx.append(open_tx)
        if not conns:
            return 0
        self._index(index)
        self.n = max(self.n, len(index))
        ids = np.array(conns, np.int64)
        code_arr = np.array(codes, np.int8)
        new = self._seq.resume_status(ids, code_arr, self.n)
        with np.errstate(all="ignore"):
            self._ensure(index, self.n)
            for d in self.detectors.values():
                d.resume(ids[new], code_arr[new], np.array(in_tx, np.bool_)[new], now)
        return int(new.sum())

    def heard(self, seen: Mapping[str, float], now: float) -> int:
        """When chargers were last heard before this collector watched them (the
        fleet state's ``charger_seen``): taken over from another collector, or
        this collector's own before a restart. A silence that began then and is
        not yet an outage at the next tick still counts; see
        ``ChargerOffline.heard``. Returns how many chargers took it."""
        index = self._own_index()
        self._index(index)
        heads = [(cs[0], t) for ch, t in seen.items() if (cs := self._by_charger.get(ch))]
        if not heads:
            return 0
        conns = np.array([c for c, _ in heads], np.int64)
        times = np.array([t for _, t in heads], np.float64)
        self._ensure(index, self.n)
        return sum(d.heard(conns, times, now) for d in self.detectors.values())

    #: Signals that change by time alone at an instant known in advance
    #: (``next_deadline``): a liveness timeout, not a sampled reading.
    deadline_signals: tuple[str, ...] = (ChargerOffline.fault,)

    def next_deadline(self) -> float:
        """When ``deadline_signals`` next change unless a charger is heard
        before: ChargerOffline's ``deadline`` (inf: none; -inf: known at the
        next tick). A caller that ticks then sees the change at that moment."""
        d = self.detectors.get(ChargerOffline.fault)
        return d.deadline() if isinstance(d, ChargerOffline) else np.inf

    @property
    def outage_changes(self) -> int:
        """How often a charger_offline outage opened or closed: ``snapshot`` holds
        the open ones, so a store saves it again when this moves."""
        d = self.detectors.get(ChargerOffline.fault)
        return d.changes if isinstance(d, ChargerOffline) else 0

    def forget(self, chargers: Callable[[str], bool], at: float) -> int:
        """Stop watching the chargers ``chargers`` names (their partition went to
        another collector): each detector's ``forget`` of their connectors;
        how many chargers."""
        self._index(self._own_index())
        names = [charger for charger in self._by_charger if chargers(charger)]
        if names:
            conns = np.array([c for ch in names for c in self._by_charger[ch]], np.int64)
            # The status in force too: should they come back, their state is the
            # one handed back with them (``resume``), not the one left here.
            self._seq.forget_status(conns)
            with np.errstate(all="ignore"):
                for d in self.detectors.values():
                    d.forget(conns, at)
        return len(names)

    def update_frame(self, frame: Frame, ev: Events, index: ConnectorIndex, now: float) -> None:
        """Like ``update`` for a frame that is already cleaned and sorted (benchmarks)."""
        self.n = max(self.n, frame.n_conn)
        for d in self.detectors.values():
            d.update(frame, ev, index, now)

    def tick(self, now: float) -> None:
        """Advance time without data: silence-based detectors time out here."""
        with np.errstate(all="ignore"):
            for d in self.detectors.values():
                d.tick(now)

    @property
    def signals(self) -> dict[str, NDArray[np.bool_] | NDArray[np.float64]]:
        out: dict[str, NDArray[np.bool_] | NDArray[np.float64]] = {}
        for name, d in self.detectors.items():
            d.ensure(None, self.n)
            d.refresh()
            out[name] = d.active[: self.n].copy()
            out[f"{name}_score"] = d.score[: self.n].copy()
        return out

    @property
    def counters(self) -> dict[str, int]:
        out = dict(self._counters)
        for name, d in self.detectors.items():
            for k, v in d.counters.items():
                out[f"{name}.{k}"] = v
        return out

    def open_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.end is None]
