"""One-minute rollups of the meter stream, for fleet-wide dashboard panels.

Raw ``meter`` rows arrive at ~1 Hz per connector; a fleet panel over thousands
of connectors and a day would read tens of millions of points. The rollups
below keep those panels to one point per connector (or per site) and minute.

Series written (documented in docs/deploy.md, "Stored series"):

* ``meter_1m`` — tags ``charger``, ``connector``, ``site``; fields
  ``power_w_mean``, ``power_w_max``, ``energy_wh_last`` (the register at the
  latest meter time in the bucket), ``temperature_c_max`` (each omitted when
  the bucket had no such value) and ``samples`` (int, rows in the bucket).
* ``site_1m`` — tag ``site``; fields ``power_w_sum`` (sum over connectors of
  their bucket means), ``connectors_reporting`` (int, connectors with a sample
  in the bucket), ``connectors_charging`` (int, bucket mean power above
  ``CHARGING_W``) and ``connectors_total`` (int, connectors of the site known so
  far, so panels can show an online share). Written for every site and every
  closed minute since the first sample, zeros included: a site that goes dark
  shows as 0, not as a gap.

Time stamps are the bucket start, in milliseconds, on the meter clock -- but
a charger whose clock the session engine found off (docs/sessions.md, "Charger
clocks that are off") counts on the receive clock, as its sessions do: its rows
are moved by the engine's applied offset for it (``clock_offsets``, read per
batch; the engine's figure, so the two never disagree) before bucketing.

Buckets close only in :meth:`Downsampler.tick`, once ``now`` is past the
bucket end plus ``grace_s``; ``on_batch`` never closes anything. Every
aggregate is order-independent (sum, count, max, value at the latest time), so
the output depends only on the rows and the tick times, not on how the stream
was cut into batches. A row for a bucket that has already closed is dropped
and counted in ``late``. One dated more than ``max_ahead_s`` past the batch's
``now`` is dated after its own receipt, which no right clock does (a charger
ahead whose offset is not confirmed yet, or was just set right from behind):
it is bucketed by its receive time and counted in ``redated`` (dropped and
counted in ``future`` only if that too is past ``now + max_ahead_s``), rather
than held in a bucket open for as long as the skew. One dated more than
``max_behind_s`` before ``now`` (a charger whose clock reset to 2000) is
dropped and counted in ``late``, because the first tick would otherwise write a
site row for every minute since then. Rows dated in the past are never moved
to their receive time without a confirmed offset: that is also what a late
delivery looks like, and a backlog belongs in the minutes it was measured in.

After an outage the broker's backlog arrives after the first tick has closed the
minutes it belongs to: those rows are in ``meter`` but not in the rollups
(counted in ``late``). That is the price of rollups that never change once written.
"""

from __future__ import annotations

__all__ = ["CHARGING_W", "Downsampler"]

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chargewatch.model.batch import FIELD_INDEX, MeterBatch
from chargewatch.model.events import Event
from chargewatch.model.fleet import ConnectorIndex
from chargewatch.storage.lineproto import LineSink, series_prefix

#: A connector whose bucket mean power is above this is counted as charging.
#: Idle chargers draw a few watts (contactor coil, display); 100 W is well above
#: that and well below the slowest real charge (6 A single phase ≈ 1.4 kW).
CHARGING_W = 100.0

_P = FIELD_INDEX["power_w"]
_E = FIELD_INDEX["energy_wh"]
_T = FIELD_INDEX["temperature_c"]


@dataclass
class _Bucket:
    """Per-connector accumulators of one open bucket (arrays indexed by connector id)."""

    samples: NDArray[np.int64]
    # Power sums in integer milliwatts: integer addition is exact, so the mean
    # does not depend on the order rows arrived in (float sums differ in the
    # last bits with order, and "independent of batch cuts" means identical).
    p_sum_mw: NDArray[np.int64]
    p_n: NDArray[np.int64]
    p_max: NDArray[np.float64]
    e_ts: NDArray[np.float64]  # meter time of e_last; -inf = none yet
    e_last: NDArray[np.float64]
    t_max: NDArray[np.float64]

    @staticmethod
    def new(n: int) -> _Bucket:
        return _Bucket(
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.zeros(n, np.int64),
            np.full(n, -np.inf),
            np.full(n, -np.inf),
            np.full(n, np.nan),
            np.full(n, -np.inf),
        )

    def grow(self, n: int) -> None:
        have = self.samples.shape[0]
        if n <= have:
            return
        extra = _Bucket.new(n - have)
        for name in self.__dataclass_fields__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(extra, name)]))


class Downsampler:
    """A pipeline Stage writing ``meter_1m`` and ``site_1m`` lines to ``sink``."""

    def __init__(
        self,
        index: ConnectorIndex,
        sink: LineSink,
        *,
        interval_s: int = 60,
        grace_s: float = 10.0,
        max_ahead_s: float = 300.0,
        max_behind_s: float = 86_400.0,
        clock_offsets: Callable[[], NDArray[np.float64] | None] | None = None,
    ) -> None:
        """``clock_offsets``: the session engine's applied clock offset per dense
        connector, or None while every clock is right
        (``SessionEngine.clock_offsets``)."""
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        if max_ahead_s < 0:
            raise ValueError(f"max_ahead_s must be >= 0, got {max_ahead_s}")
        if max_behind_s <= 0:
            raise ValueError(f"max_behind_s must be > 0, got {max_behind_s}")
        self.index = index
        self.sink = sink
        self.interval = interval_s
        self.grace = grace_s
        self.max_ahead = max_ahead_s
        self.max_behind = max_behind_s
        self.clock_offsets = clock_offsets
        self._open: dict[int, _Bucket] = {}  # bucket start (s) -> accumulators
        #: Every bucket starting before this has been written (or was empty).
        self.closed_until: int | None = None
        self._first: int | None = None  # start of the first bucket that saw data
        self._prefix: list[str] = []  # meter_1m series prefix per connector id
        self.late = 0  # rows dropped: their bucket had closed, or older than max_behind_s
        self.future = 0  # rows dropped: received (not only dated) too far past `now`
        self.redated = 0  # rows dated too far past `now`, bucketed by their receive time
        self.lines_written = 0

    # -- Stage ----------------------------------------------------------------

    def on_batch(self, batch: MeterBatch, events: list[Event], now: float) -> None:
        if not len(batch):
            return
        n = len(self.index)
        ts = batch.ts
        offsets = self.clock_offsets() if self.clock_offsets is not None else None
        if offsets is not None:
            # A charger whose clock the sessions found off: its rows on the
            # receive clock, moved by the same offset (one gather, one subtract;
            # only while some charger has one).
            if len(offsets) < n:  # (an index the engine has not caught up with)
                offsets = np.concatenate([offsets, np.zeros(n - len(offsets))])
            ts = ts - offsets[batch.conn]
        keep = np.isfinite(ts)
        ts = np.where(keep, ts, 0.0)
        too_new = ts > now + self.max_ahead
        if too_new.any():
            # Dated more than max_ahead_s past `now`, so past their own receipt:
            # wrong however late they came (a clock ahead whose offset is not
            # yet confirmed). Their receive time is the best time they have;
            # bucketed as dated, they would hold a bucket open for the skew.
            ts = np.where(too_new, batch.recv, ts)
            dropped = too_new & ~(ts <= now + self.max_ahead)  # (received from the future)
            self.redated += int(too_new.sum()) - int(dropped.sum())
            self.future += int(dropped.sum())
            keep &= ~dropped
        start = (np.floor(ts / self.interval) * self.interval).astype(np.int64)
        ancient = keep & (ts < now - self.max_behind)
        self.late += int(ancient.sum())
        keep &= ~ancient
        if self.closed_until is not None:
            late = keep & (start < self.closed_until)
            self.late += int(late.sum())
            keep &= ~late
        if not keep.any():
            return
        conn = batch.conn[keep]
        ts = ts[keep]
        vals = batch.values[keep]
        start = start[keep]
        first = int(start.min())
        self._first = first if self._first is None else min(self._first, first)
        for b in np.unique(start).tolist():
            rows = start == b
            acc = self._open.get(b)
            if acc is None:
                acc = self._open[b] = _Bucket.new(n)
            else:
                acc.grow(n)
            self._accumulate(acc, conn[rows], ts[rows], vals[rows], n)

    def tick(self, now: float) -> None:
        # Bucket [b, b + interval) is complete once b + interval + grace <= now;
        # bucket starts are multiples of the interval, so that is b < close_before.
        close_before = math.floor((now - self.grace) / self.interval) * self.interval
        if self.closed_until is not None and close_before <= self.closed_until:
            return
        lines: list[str] = []
        if self._first is not None:
            begin = self._first
            if self.closed_until is not None:
                begin = max(begin, self.closed_until)
            # Rows dated before closed_until are dropped on arrival, so no open
            # bucket starts before `begin`.
            for b in range(begin, close_before, self.interval):
                lines.extend(self._bucket_lines(b, self._open.pop(b, None)))
        self.closed_until = close_before
        if lines:
            self.sink.write(lines)
            self.lines_written += len(lines)

    # -- internals ------------------------------------------------------------

    @staticmethod
    def _accumulate(
        acc: _Bucket,
        conn: NDArray[np.int32],
        ts: NDArray[np.float64],
        vals: NDArray[np.float64],
        n: int,
    ) -> None:
        acc.samples += np.bincount(conn, minlength=n)[:n]
        p = vals[:, _P]
        has_p = ~np.isnan(p)
        if has_p.any():
            mw = np.round(p[has_p] * 1000.0).astype(np.int64)
            np.add.at(acc.p_sum_mw, conn[has_p], mw)
            acc.p_n += np.bincount(conn[has_p], minlength=n)[:n]
            np.maximum.at(acc.p_max, conn[has_p], p[has_p])
        t = vals[:, _T]
        has_t = ~np.isnan(t)
        if has_t.any():
            np.maximum.at(acc.t_max, conn[has_t], t[has_t])
        e = vals[:, _E]
        has_e = ~np.isnan(e)
        if has_e.any():
            c, et, ev = conn[has_e], ts[has_e], e[has_e]
            # The latest meter time per connector; on equal times the larger
            # register wins, so the result does not depend on arrival order.
            order = np.lexsort((ev, et, c))
            c, et, ev = c[order], et[order], ev[order]
            last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
            c, et, ev = c[last], et[last], ev[last]
            old_ts, old_e = acc.e_ts[c], acc.e_last[c]
            newer = (et > old_ts) | ((et == old_ts) & ~(ev <= old_e))
            acc.e_ts[c[newer]] = et[newer]
            acc.e_last[c[newer]] = ev[newer]

    def _prefixes(self) -> list[str]:
        keys = self.index.keys
        while len(self._prefix) < len(keys):
            i = len(self._prefix)
            charger, connector = keys[i]
            tags = {"charger": charger, "connector": str(connector), "site": self.index.site_of(i)}
            self._prefix.append(series_prefix("meter_1m", tags) + " ")
        return self._prefix

    def _bucket_lines(self, start: int, acc: _Bucket | None) -> list[str]:
        n = len(self.index)
        t_ms = start * 1000
        out: list[str] = []
        n_sites = len(self.index.site_names)
        site_of = self.index.site[:n]
        total = np.bincount(site_of, minlength=n_sites)
        if acc is None:
            reporting = charging = np.zeros(n_sites, np.int64)
            power_sum = np.zeros(n_sites)
        else:
            acc.grow(n)
            prefixes = self._prefixes()
            seen = np.flatnonzero(acc.samples[:n] > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = acc.p_sum_mw[:n] / acc.p_n[:n] / 1000.0  # NaN where no power reported
            for i in seen.tolist():
                fields: list[str] = []
                if acc.p_n[i]:
                    fields.append(f"power_w_mean={float(mean[i])!r}")
                    fields.append(f"power_w_max={float(acc.p_max[i])!r}")
                if acc.e_ts[i] > -np.inf:
                    fields.append(f"energy_wh_last={float(acc.e_last[i])!r}")
                if acc.t_max[i] > -np.inf:
                    fields.append(f"temperature_c_max={float(acc.t_max[i])!r}")
                fields.append(f"samples={int(acc.samples[i])}i")
                out.append(f"{prefixes[i]}{','.join(fields)} {t_ms}")
            has_mean = ~np.isnan(mean)
            reporting = np.bincount(site_of[seen], minlength=n_sites)
            power_sum = np.bincount(
                site_of[has_mean], weights=mean[has_mean], minlength=n_sites
            ).astype(np.float64)
            charging = np.bincount(
                site_of[has_mean & (np.nan_to_num(mean) > CHARGING_W)], minlength=n_sites
            )
        for s, name in enumerate(self.index.site_names):
            if not total[s]:
                continue
            out.append(
                f"{series_prefix('site_1m', {'site': name})} "
                f"power_w_sum={float(power_sum[s])!r},"
                f"connectors_reporting={int(reporting[s])}i,"
                f"connectors_charging={int(charging[s])}i,"
                f"connectors_total={int(total[s])}i {t_ms}"
            )
        return out
