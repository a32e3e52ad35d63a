"""Encoding to OCPP 1.6-J frames as a bridge forwards them (``ocpp/1.6/<charger>/cp|csms``).

Frames are what the charger and the CSMS put on the WebSocket, unchanged. The
CSMS side is simulated too: its CALLRESULTs (``[3, id, {...}]``) arrive 150 ms
after the CALL — for StartTransaction the result carries the ``transactionId``
the CSMS assigns. MeterValues results are left out by default (they are empty
and as many as the samples). Sampled values are strings; chargers flagged
``kw_power`` report Power.Active.Import in kW (a correct, if unusual, unit).
"""

from __future__ import annotations

__all__ = ["csms_topic", "event_frames", "heartbeat_frames", "meter_frames"]

import itertools

import numpy as np
import orjson

from chargewatch.simulator.native import Msg
from chargewatch.simulator.plan import ConnInfo
from chargewatch.simulator.timeline import Ev
from chargewatch.simulator.timeseries import Chunk
from chargewatch.simulator.truth import iso

CSMS_DELAY_S = 0.15
_PHASES = ("L1", "L2", "L3")
_PHASES_N = ("L1-N", "L2-N", "L3-N")


def cp_topic(charger: str) -> str:
    return f"ocpp/1.6/{charger}/cp"


def csms_topic(charger: str) -> str:
    return f"ocpp/1.6/{charger}/csms"


def iso_array(ts: np.ndarray, offset_h: float = 0.0) -> list[str]:
    """Vectorised RFC 3339 (ms) for epoch seconds: UTC with Z, or local time with
    its offset (``+01:00``) when ``offset_h`` is given."""
    ms = np.round((ts + offset_h * 3600.0) * 1000.0).astype(np.int64).astype("datetime64[ms]")
    if not offset_h:
        suffix = "Z"
    else:
        sign = "+" if offset_h > 0 else "-"
        minutes = round(abs(offset_h) * 60)
        suffix = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return [s + suffix for s in np.datetime_as_string(ms, unit="ms").tolist()]


def _sv(value: str, measurand: str, unit: str, **extra: str) -> dict[str, str]:
    d = {"value": value, "context": "Sample.Periodic", "measurand": measurand, "unit": unit}
    d.update(extra)
    return d


def meter_frames(
    ch: Chunk,
    conns: list[ConnInfo],
    latency: np.ndarray,
    batch: int,
    clock: np.ndarray | None = None,
) -> list[Msg]:
    """MeterValues for the emitted samples; ``clock`` marks the clock-aligned ones
    (context ``Sample.Clock``, ClockAlignedDataInterval) among them."""
    out: list[Msg] = []
    kk = np.arange(ch.k0, ch.k1)
    for c in conns:
        row = c.idx
        idx = np.nonzero(ch.emit[row])[0]
        if idx.size == 0:
            continue
        topic = cp_topic(c.charger)
        lat = float(latency[c.charger_idx])
        nph = 1 if c.phases <= 1 else 3
        quirk = c.quirk
        stamps = iso_array(ch.ts[row, idx], c.utc_offset_h if quirk == "local_offset" else 0.0)
        recv = (ch.t[row, idx] + lat).tolist()
        e = ch.energy[row, idx].tolist()
        p = ch.power[row, idx].tolist()
        cur = ch.current[:nph, row, idx].T.tolist()
        vol = ch.voltage[:nph, row, idx].T.tolist()
        tmp = ch.temperature[row, idx].tolist()
        soc = ch.soc[row, idx].tolist()
        off = ch.offered[row, idx].tolist()
        tx = ch.tx[row, idx]
        aligned = clock[row, idx].tolist() if clock is not None else [False] * idx.size
        k = kk[idx]
        g = (k // batch) * (1 << 32) + tx
        cut = np.nonzero(np.diff(g))[0] + 1
        bounds = np.concatenate(([0], cut, [idx.size])).tolist()
        for a, b in itertools.pairwise(bounds):
            values = []
            for i in range(a, b):
                if quirk == "implicit_register":
                    # no measurand, no unit: the spec's defaults make it the register in Wh
                    svs = [{"value": f"{e[i]:.3f}", "context": "Sample.Periodic"}]
                elif quirk == "register_dropout" and (int(k[i]) * 2654435761) % 97 < 10:
                    svs = []  # ~10 % of samples lack the register
                else:
                    svs = [_sv(f"{e[i]:.3f}", "Energy.Active.Import.Register", "Wh")]
                if quirk == "per_phase_power":
                    total = sum(cur[i]) or 1.0
                    svs.extend(
                        _sv(f"{p[i] * cur[i][ph] / total:.3f}", "Power.Active.Import", "W",
                            phase=_PHASES[ph])
                        for ph in range(nph)
                    )  # fmt: skip
                elif c.kw_power:
                    svs.append(_sv(f"{p[i] / 1000.0:.5f}", "Power.Active.Import", "kW"))
                else:
                    svs.append(_sv(f"{p[i]:.2f}", "Power.Active.Import", "W"))
                if c.dc:
                    svs.append(_sv(f"{cur[i][0]:.3f}", "Current.Import", "A"))
                    svs.append(_sv(f"{vol[i][0]:.2f}", "Voltage", "V"))
                else:
                    svs.extend(
                        _sv(f"{cur[i][ph]:.3f}", "Current.Import", "A", phase=_PHASES[ph])
                        for ph in range(nph)
                    )
                    svs.extend(
                        _sv(f"{vol[i][ph]:.2f}", "Voltage", "V", phase=_PHASES_N[ph])
                        for ph in range(nph)
                    )
                svs.append(_sv(f"{tmp[i]:.2f}", "Temperature", "Celsius", location="Body"))
                if soc[i] == soc[i]:  # not NaN
                    svs.append(_sv(f"{soc[i]:.2f}", "SoC", "Percent", location="EV"))
                svs.append(_sv(f"{off[i]:.1f}", "Current.Offered", "A"))
                if aligned[i]:
                    for sv in svs:
                        sv["context"] = "Sample.Clock"
                values.append({"timestamp": stamps[i], "sampledValue": svs})
            body: dict[str, object] = {"connectorId": c.connector, "meterValue": values}
            if tx[a]:
                body["transactionId"] = int(tx[a])
            msgid = f"mv{int(k[b - 1])}-{c.connector}"
            out.append((recv[b - 1], topic, orjson.dumps([2, msgid, "MeterValues", body])))
    return out


def _call(
    ev: Ev, charger: str, action: str, body: object, result: object, *, csms: bool
) -> list[Msg]:
    msgid = f"{ev.seq}"
    frames: list[Msg] = [(ev.recv, cp_topic(charger), orjson.dumps([2, msgid, action, body]))]
    if csms:
        frames.append(
            (ev.recv + CSMS_DELAY_S, csms_topic(charger), orjson.dumps([3, msgid, result]))
        )
    return frames


def _reading(ts: float, wh: float, context: str) -> dict[str, object]:
    return {
        "timestamp": iso(ts),
        "sampledValue": [
            {
                "value": f"{wh:.3f}",
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
            }
        ],
    }


def event_frames(
    ev: Ev,
    charger: str,
    *,
    vendor: str,
    model: str,
    heartbeat_interval: float,
    csms: bool,
    meter_start: tuple[float, float],
) -> list[Msg]:
    """Frames for one event; ``meter_start`` is the register at the transaction's
    start and the charger's time of it (for StopTransaction's transactionData)."""
    if ev.kind == "status":
        body: dict[str, object] = {
            "connectorId": ev.connector,
            "errorCode": ev.error_code,
            "status": ev.status,
            "timestamp": iso(ev.ts),
        }
        if ev.info:
            body["info"] = ev.info
        if ev.vendor_error:
            body["vendorErrorCode"] = ev.vendor_error
        return _call(ev, charger, "StatusNotification", body, {}, csms=csms)
    if ev.kind == "boot":
        body = {
            "chargePointVendor": vendor[:20],
            "chargePointModel": model[:20],
            "chargePointSerialNumber": f"SN-{charger}",
            "firmwareVersion": "1.8.3",
        }
        result = {
            "status": "Accepted",
            "currentTime": iso(ev.recv),
            "interval": int(heartbeat_interval),
        }
        return _call(ev, charger, "BootNotification", body, result, csms=csms)
    s = ev.session
    if ev.kind == "tx_start" and s is not None:
        body = {
            "connectorId": ev.connector,
            "idTag": s.id_tag,
            "meterStart": round(ev.meter_wh),
            "timestamp": iso(ev.ts),
        }
        result = {"transactionId": s.transaction_id, "idTagInfo": {"status": "Accepted"}}
        # The CSMS result is what tells a listener the transaction id, so it is
        # always emitted for StartTransaction.
        return _call(ev, charger, "StartTransaction", body, result, csms=True)
    if ev.kind == "tx_stop" and s is not None:
        body = {
            "transactionId": s.transaction_id,
            "idTag": s.id_tag,
            "meterStop": round(ev.meter_wh),
            "timestamp": iso(ev.ts),
            "reason": s.stop_reason,
            "transactionData": [
                _reading(meter_start[1] or s.start, meter_start[0], "Transaction.Begin"),
                _reading(ev.ts, ev.meter_wh, "Transaction.End"),
            ],
        }
        return _call(
            ev, charger, "StopTransaction", body, {"idTagInfo": {"status": "Accepted"}}, csms=csms
        )
    return []  # the online flag is not part of OCPP


def heartbeat_frames(charger: str, ts: float, recv: float, seq: int, csms: bool) -> list[Msg]:
    msgid = f"hb{seq}"
    out: list[Msg] = [(recv, cp_topic(charger), orjson.dumps([2, msgid, "Heartbeat", {}]))]
    if csms:
        out.append(
            (
                recv + CSMS_DELAY_S,
                csms_topic(charger),
                orjson.dumps([3, msgid, {"currentTime": iso(recv)}]),
            )
        )
    return out
