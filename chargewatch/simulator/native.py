"""Encoding to the native high-rate telemetry contract (``ev/<charger>/...`` topics).

A meter message is one sample (scalars) when the batch size is 1, else a
columnar batch: the same keys holding equal-length arrays. A batch never mixes
samples with and without a key (e.g. SoC before and after the car is plugged
in): it is split there instead, so a batch carries exactly the single-sample
messages' content and never a null.
"""

from __future__ import annotations

__all__ = ["Msg", "event_messages", "heartbeat_message", "meter_messages"]

import math

import numpy as np
import orjson

from chargewatch.simulator.plan import ConnInfo
from chargewatch.simulator.timeline import Ev
from chargewatch.simulator.timeseries import Chunk

Msg = tuple[float, str, bytes]  # (receive time, topic, payload)
_NP = orjson.OPT_SERIALIZE_NUMPY
_TX_EVENTS = {"tx_start": "start", "tx_update": "update", "tx_stop": "stop"}


def _groups(k: np.ndarray, key: np.ndarray, batch: int) -> list[tuple[int, int]]:
    """[a, b) runs of samples that share a batch number and a key."""
    if k.size == 0:
        return []
    g = (k // batch) * 4 + key
    cut = np.nonzero(np.diff(g))[0] + 1
    bounds = np.concatenate(([0], cut, [k.size]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def meter_messages(ch: Chunk, conns: list[ConnInfo], latency: np.ndarray, batch: int) -> list[Msg]:
    out: list[Msg] = []
    kk = np.arange(ch.k0, ch.k1)
    all_rows: np.ndarray = np.all(ch.emit, axis=1)
    soc_known = np.isfinite(ch.soc)
    # Current and voltage sample-major (samples, phases), as the contract nests them.
    cur_all = np.ascontiguousarray(ch.current.transpose(1, 2, 0))
    vol_all = np.ascontiguousarray(ch.voltage.transpose(1, 2, 0))
    for c in conns:
        row = c.idx
        sel: slice | np.ndarray
        if all_rows[row]:
            sel = slice(None)  # the common case: views, no copies
            n = ch.m
        else:
            sel = np.nonzero(ch.emit[row])[0]
            n = sel.size
            if n == 0:
                continue
        topic = f"ev/{c.charger}/{c.connector}/meter"
        lat = float(latency[c.charger_idx])
        nph = 1 if c.phases <= 1 else 3
        ts = ch.ts[row, sel]
        recv = ch.t[row, sel] + lat
        e = ch.energy[row, sel]
        p = ch.power[row, sel]
        cur = cur_all[row, sel, :nph]
        vol = vol_all[row, sel, :nph]
        tmp = ch.temperature[row, sel]
        soc = ch.soc[row, sel]
        off = ch.offered[row, sel]
        has_soc = soc_known[row, sel]
        if batch == 1:
            tl, el, pl, tml, sl, ol = (
                ts.tolist(), e.tolist(), p.tolist(), tmp.tolist(), soc.tolist(), off.tolist()
            )  # fmt: skip
            cl, vl, rl = cur.tolist(), vol.tolist(), recv.tolist()
            for i in range(n):
                d: dict[str, object] = {
                    "ts": tl[i],
                    "energy_wh": el[i],
                    "power_w": pl[i],
                    "current_a": cl[i],
                    "voltage_v": vl[i],
                    "temperature_c": tml[i],
                    "offered_a": ol[i],
                }
                if not math.isnan(sl[i]):
                    d["soc_pct"] = sl[i]
                out.append((rl[i], topic, orjson.dumps(d)))
            continue
        if isinstance(sel, slice) and (has_soc.all() or not has_soc.any()):
            # whole chunk, one key set: batches are plain multiples of ``batch``
            bounds = [(a, min(a + batch, n)) for a in range(0, n, batch)]
        else:
            bounds = _groups(kk[sel], has_soc.astype(np.int64), batch)
        for a, b in bounds:
            d = {
                "ts": ts[a:b],
                "energy_wh": e[a:b],
                "power_w": p[a:b],
                "current_a": np.ascontiguousarray(cur[a:b]),  # orjson needs C order
                "voltage_v": np.ascontiguousarray(vol[a:b]),
                "temperature_c": tmp[a:b],
                "offered_a": off[a:b],
            }
            if has_soc[a]:
                d["soc_pct"] = soc[a:b]
            out.append((float(recv[b - 1]), topic, orjson.dumps(d, option=_NP)))
    return out


def event_messages(ev: Ev, charger_id: str) -> list[Msg]:
    if ev.kind == "online":
        return [(ev.recv, f"ev/{charger_id}/online", orjson.dumps({"online": ev.online}))]
    if ev.kind == "status":
        d = {
            "ts": round(ev.ts, 3),
            "status": ev.status,
            "error_code": ev.error_code,
            "info": ev.info,
            "vendor_error_code": ev.vendor_error,
        }
        return [(ev.recv, f"ev/{charger_id}/{ev.connector}/status", orjson.dumps(d))]
    if ev.kind in _TX_EVENTS:
        s = ev.session
        assert s is not None
        stop = ev.kind == "tx_stop"
        d = {
            "ts": round(ev.ts, 3),
            "event": _TX_EVENTS[ev.kind],
            "transaction_id": str(s.transaction_id),
            "meter_wh": round(ev.meter_wh, 3),
            "id_tag": s.id_tag,
            "reason": s.stop_reason if stop else "",
        }
        return [(ev.recv, f"ev/{charger_id}/{ev.connector}/transaction", orjson.dumps(d))]
    return []  # boot has no native topic


def heartbeat_message(charger_id: str, ts: float, recv: float) -> Msg:
    return (recv, f"ev/{charger_id}/heartbeat", orjson.dumps({"ts": round(ts, 3)}))
