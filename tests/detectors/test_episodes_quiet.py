"""``Episodes.quiet`` answers the detectors' screens (nothing open, nothing
pending) from a flag instead of two passes over the fleet's flags: it must say
exactly what those passes would, after every kind of state change."""

from __future__ import annotations

import numpy as np

from chargewatch.detectors.episodes import Episodes, Finding


def _truth(ep: Episodes) -> bool:
    return not (ep.active.any() or ep.setting.any())


def test_quiet_follows_pending_open_and_closed_runs() -> None:
    sink: list[Finding] = []
    ep = Episodes("x", sink)
    ep.ensure(4)
    assert ep.quiet
    conn = np.array([1, 1], np.int64)
    ts = np.array([0.0, 1.0])
    on, off = np.ones(2, np.bool_), np.zeros(2, np.bool_)
    ep.step(conn, ts, on, off, 10.0)  # a set run shorter than min_duration: pending
    assert ep.setting[1] and not ep.active.any()
    assert not ep.quiet
    ep.step(conn, ts + 20.0, on, off, 10.0)  # long enough: open
    assert ep.active[1]
    assert not ep.quiet
    ep.step(conn, ts + 40.0, off, on, 10.0)  # clear rows: closed, nothing pending
    assert _truth(ep)
    assert ep.quiet
    assert len(sink) == 1 and sink[0].end is not None


def test_quiet_agrees_with_the_flags_after_random_steps_forces_and_ends() -> None:
    rng = np.random.default_rng(7)
    ep = Episodes("x", [])
    n = 6
    ep.ensure(n)
    t = 0.0
    for _ in range(600):
        op = rng.integers(0, 4)
        if op < 2:  # a batch of rows for some connectors, sorted by (conn, ts)
            k = int(rng.integers(1, 10))
            conn = np.sort(rng.integers(0, n, k)).astype(np.int64)
            ts = t + np.arange(k, dtype=np.float64)
            cond = rng.random(k) < (0.6 if op == 0 else 0.1)
            clear = ~cond & (rng.random(k) < 0.8)
            judged = None if rng.random() < 0.5 else rng.random(k) < 0.8
            ep.step(conn, ts, cond, clear, float(rng.choice([0.0, 2.0, 5.0])), judged=judged)
        elif op == 2:
            conns = np.unique(rng.integers(0, n, 3)).astype(np.int64)
            active = rng.random(conns.shape[0]) < 0.5
            at = np.full(conns.shape[0], t)
            ep.force(conns, active, at, at)
        else:
            ep.end(int(rng.integers(0, n)), t)
        t += 20.0
        assert ep.quiet == _truth(ep)
