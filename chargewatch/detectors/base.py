"""The one protocol every detector follows.

``update(frame, events, index, now)`` consumes one cleaned batch;
``tick(now)`` advances time without data (only silence-based detectors use it).
After either, ``active`` (bool) and ``score`` (float, NaN = unknown) hold one
value per connector. Scores are normalised so that 1.0 is the detector's
threshold. Parameters are held per connector (``self.p[name][conn]``) so that
site and model overrides cost nothing in the hot path.
"""

from __future__ import annotations

__all__ = ["Detector"]

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from chargewatch.detectors.episodes import Episodes, Finding
from chargewatch.detectors.params import DetectorConfig, Params
from chargewatch.detectors.sequencer import Events, Frame, grown
from chargewatch.model.fleet import ConnectorIndex

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def _inventory(index: ConnectorIndex | None, n: int) -> tuple[F64, F64, NDArray[np.int8]]:
    """Rated current, nominal voltage and phases of connectors ``0..n-1``: views of
    the index's columns (written when a connector is added, rewritten in place by a
    fleet reload) when it covers them, so 17 detectors share one copy; else
    defaults past its end."""
    if index is not None and len(index) >= n:
        return index.rated_current_a[:n], index.nominal_voltage_v[:n], index.phases[:n]
    rated, nominal, phases = np.zeros(n), np.full(n, 230.0), np.full(n, 3, np.int8)
    if index is not None:
        m = len(index)
        rated[:m] = index.rated_current_a[:m]
        nominal[:m] = index.nominal_voltage_v[:m]
        phases[:m] = index.phases[:m]
    return rated, nominal, phases


class SiteModels:
    """The (site, model) of connectors ``start..stop-1``, as indexes into ``keys``:
    parameters differ only by site and model, so they are resolved per pair."""

    def __init__(self, index: ConnectorIndex | None, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        pairs: dict[tuple[str, str], int] = {}
        which = np.zeros(stop - start, np.intp)
        known = min(stop, len(index)) if index is not None else start
        for c in range(start, known):  # once per new connector, not per sample
            assert index is not None
            key = (index.site_of(c), index.fleet.model_of(index.charger_of(c)))
            which[c - start] = pairs.setdefault(key, len(pairs))
        if known < stop:
            which[known - start :] = pairs.setdefault(("", ""), len(pairs))
        self.keys = list(pairs)
        self.which = which


class Detector:
    """Base class: per-connector parameters, state growth, signals, findings."""

    fault: ClassVar[str]

    def __init__(self, config: DetectorConfig | None = None, sink: list[Finding] | None = None):
        self.config = config or DetectorConfig()
        self.params: Params = self.config.params()[self.fault]  # validated defaults
        self.findings: list[Finding] = sink if sink is not None else []
        self.counters: dict[str, int] = {}
        self.p: dict[str, F64] = {f.name: np.zeros(0) for f in dataclasses.fields(self.params)}
        # A parameter with one value on every connector (no site or model
        # override): used as a scalar, which spares a gather per row.
        self._uniform: dict[str, float | None] = dict.fromkeys(self.p)
        self.score = np.full(0, np.nan)
        self.rated_a = np.zeros(0)  # inventory columns: views of the index's (_inventory)
        self.nominal_v = np.zeros(0)
        self.phases = np.zeros(0, np.int8)
        self.n = 0
        self.episodes = self._episodes()
        # Subclasses create their state in _grow; doing it once here means a
        # tick that arrives before any data (a quiet start) finds it in place.
        self._grow(0)

    def _episodes(self) -> Episodes:
        return Episodes(self.fault, self.findings)

    @property
    def active(self) -> NDArray[np.bool_]:
        return self.episodes.active[: self.n]

    def ensure(
        self,
        index: ConnectorIndex | None,
        n: int,
        keys: SiteModels | None = None,
    ) -> None:
        """Grow state to ``n`` connectors; new connectors get their site/model
        parameters. ``keys``: the new connectors' site and model, when the
        caller (DetectorSet) worked them out once for all its detectors."""
        if n <= self.n:
            return
        if keys is None or keys.start != self.n or keys.stop < n:
            keys = SiteModels(index, self.n, n)
        params = [self.config.params(site, model)[self.fault] for site, model in keys.keys]
        which = keys.which[: n - self.n]
        for name, old in list(self.p.items()):
            per_key = np.array([float(getattr(p, name)) for p in params])
            u = self._uniform[name] if self.n else float(per_key[which[0]])
            if u is not None and bool((per_key[np.unique(which)] == u).all()):
                # One value on every connector (no site or model override): a
                # read-only broadcast of it, no memory per connector.
                self.p[name] = np.broadcast_to(np.float64(u), (n,))
                self._uniform[name] = u
                continue
            arr = old if old.flags.writeable else np.full(self.n, self._uniform[name] or 0.0)
            arr = grown(arr, n, 0.0)
            arr[self.n : n] = per_key[which]
            self.p[name] = arr
            self._uniform[name] = None
        self.score = grown(self.score, n, np.nan)
        self.rated_a, self.nominal_v, self.phases = _inventory(index, n)
        self.episodes.ensure(n)
        self._grow(n)
        self.n = n

    def _grow(self, n: int) -> None:
        """Subclasses grow their own state arrays here."""

    def update(
        self, frame: Frame, events: Events, index: ConnectorIndex | None, now: float
    ) -> None:
        self.ensure(index, frame.n_conn)
        self._update(frame, events, now)

    def _update(self, frame: Frame, events: Events, now: float) -> None:
        raise NotImplementedError

    def snapshot(self, index: ConnectorIndex) -> dict[str, Any]:
        """What this detector learned that a restart must not lose, per charger
        id (JSON-able; chargers with nothing learned left out). Most detectors
        learn nothing a few new samples do not give back: none."""
        return {}

    def restore(self, learned: Mapping[str, Any], index: ConnectorIndex) -> None:
        """Take back, per charger, what :meth:`snapshot` gave, replacing what
        this detector knows of those chargers. Their connectors are in
        ``index`` and in this detector's state already (``ensure``)."""

    def resume(
        self, conns: I64, status: NDArray[np.int8], in_tx: NDArray[np.bool_], now: float
    ) -> None:
        """Connectors ``conns``, not heard yet, are in ``status`` (a STATUS_CODE,
        -1 unknown) with a transaction open or not (``in_tx``) as of ``now``
        (``DetectorSet.resume``). Detectors that watch by session state take it."""

    def heard(self, conns: I64, t: F64, now: float) -> int:
        """The chargers of ``conns`` were last heard at ``t`` before this collector
        watched them: by the collector they come from, or by this one before a
        restart (``DetectorSet.heard``); how many this detector took."""
        return 0

    def forget(self, conns: I64, at: float) -> None:
        """Another collector watches connectors ``conns`` from now on (their
        partition moved: collector/cluster.py). Their episodes end at ``at``;
        a detector that opens episodes on the clock alone (a silence, a wait)
        also drops the times it counts from, so that it neither finds them
        silent here nor, should they come back, takes the time another
        collector heard them for a silence. What was learned stays (it went to
        the new owner too: collector/liveness_store.py)."""
        for c in conns.tolist():
            if c < self.n:
                self._end(c, at)

    def _end(self, c: int, at: float) -> None:
        """End connector ``c``'s episodes at ``at`` (a detector with more than one
        episode table ends them all)."""
        self.episodes.end(c, at)

    def tick(self, now: float) -> None:
        """Advance time without data; only silence-based detectors override this."""

    def refresh(self) -> None:
        """Bring scores that grow with time (silences, waits) up to the last update
        or tick. Computed when signals are read, not on every call: an update of a
        few rows must not cost a pass over every connector."""

    def _count(self, key: str, k: int) -> None:
        if k:
            self.counters[key] = self.counters.get(key, 0) + k

    def _at(self, name: str, conn: NDArray[np.int64]) -> F64 | float:
        """Parameter ``name`` for each row's connector (a scalar when uniform)."""
        u = self._uniform[name]
        if u is not None:
            return u
        return np.take(self.p[name], conn)

    def _at3(self, name: str, conn: NDArray[np.int64]) -> F64 | float:
        """``_at`` shaped to broadcast over the three phase columns."""
        v = self._at(name, conn)
        return v if isinstance(v, float) else v[:, None]

    @staticmethod
    def _last_rows(f: Frame, judged: NDArray[np.bool_] | None) -> tuple[I64, I64]:
        """Each connector's last judged row of ``f``: (connectors, row indices)."""
        if judged is None or bool(judged.all()):
            return f.touched, f.last_idx
        lw = f.last_where(judged)
        ok = lw >= 0
        return f.touched[ok], lw[ok]

    def _set_score(self, conn: NDArray[np.int64], score: F64, last: NDArray[np.bool_]) -> None:
        """Each connector's score becomes that of its last row (NaN stays NaN: unknown)."""
        self.score[conn[last]] = score[last]
