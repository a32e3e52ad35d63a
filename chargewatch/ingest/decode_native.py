"""Decoder for chargewatch's native telemetry (``ev/<charger>/<connector>/...``).

The contract (also in README.md):

* ``ev/<charger>/<connector>/meter`` — one sample ``{"ts": 1795487165.25,
  "energy_wh": .., "power_w": .., "current_a": [l1, l2, l3], "voltage_v": [..],
  "temperature_c": .., "soc_pct": .., "offered_a": ..}`` or a columnar batch with
  the same keys holding equal-length arrays. All keys but ``ts`` are optional.
* ``ev/<charger>/<connector>/status`` — ``{"ts", "status", "error_code", "info",
  "vendor_error_code"}`` (OCPP 1.6 vocabularies).
* ``ev/<charger>/<connector>/transaction`` — ``{"ts", "event":
  "start"|"update"|"stop", "transaction_id", "meter_wh", "id_tag", "reason"}``.
* ``ev/<charger>/heartbeat`` — ``{"ts"}``; ``ev/<charger>/online`` (retained,
  last will) — ``{"online": true|false}``.

``ts`` is the meter's clock: epoch seconds or an RFC 3339 string with offset.

A sample is stored whole or rejected whole, with a reason; one bad sample of a
columnar batch never costs the batch's good samples.
"""

from __future__ import annotations

__all__ = ["LIMITS", "NativeDecoder", "parse_ts"]

import bisect
import itertools
import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from chargewatch.core.errors import DecodeError
from chargewatch.core.gcpause import gc_paused
from chargewatch.ingest.decode_simd import SimdColumns
from chargewatch.ingest.topics import Route
from chargewatch.model.batch import FIELD_INDEX, N_FIELDS, MeterBatch
from chargewatch.model.decoding import DecodeSink, SinkMark
from chargewatch.model.events import (
    CONNECTOR_STATUSES,
    ERROR_CODES,
    HeartbeatEvent,
    OnlineEvent,
    StatusEvent,
    TransactionEvent,
)
from chargewatch.model.fleet import ConnectorIndex

#: Plausible ranges; a value outside is absurd (a broken sensor or unit), not data.
LIMITS: dict[str, tuple[float, float]] = {
    "energy_wh": (0.0, 1e10),  # 10 GWh: far beyond any charger's lifetime register
    "power_w": (-2e6, 2e6),  # negative: V2G export; 2 MW covers megawatt charging
    "current_l1_a": (-3000.0, 3000.0),
    "current_l2_a": (-3000.0, 3000.0),
    "current_l3_a": (-3000.0, 3000.0),
    "voltage_l1_v": (0.0, 1500.0),
    "voltage_l2_v": (0.0, 1500.0),
    "voltage_l3_v": (0.0, 1500.0),
    "temperature_c": (-60.0, 200.0),
    "soc_pct": (0.0, 100.0),
    "offered_a": (0.0, 3000.0),
}
_LO = np.array([LIMITS[f][0] for f in FIELD_INDEX])
_HI = np.array([LIMITS[f][1] for f in FIELD_INDEX])

_SCALARS: tuple[tuple[str, int], ...] = tuple(
    (k, FIELD_INDEX[k]) for k in ("energy_wh", "power_w", "temperature_c", "soc_pct", "offered_a")
)
_PHASED: tuple[tuple[str, int], ...] = (
    ("current_a", FIELD_INDEX["current_l1_a"]),
    ("voltage_v", FIELD_INDEX["voltage_l1_v"]),
)
_METER_KEY_ORDER = ("ts", *(k for k, _ in _SCALARS), *(k for k, _ in _PHASED))
_METER_KEYS = frozenset(_METER_KEY_ORDER)

_FIELD_NAMES = tuple(FIELD_INDEX)
_MIN_TS = 1_262_304_000.0  # 2010-01-01: older meter clocks are unset, not history
_NAN = math.nan
_NUM = (int, float)


def parse_ts(value: Any, recv: float, max_future_s: float) -> float:
    """Meter time as epoch seconds; raises DecodeError(bad_timestamp,
    timestamp_before_2010, future_timestamp)."""
    if type(value) in _NUM:
        try:
            ts = float(value)
        except OverflowError:  # an int beyond a double's range
            raise DecodeError("bad_timestamp", f"ts has {len(str(value))} digits") from None
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise DecodeError("bad_timestamp", f"not RFC 3339: {value!r}") from None
        if dt.tzinfo is None:
            raise DecodeError("bad_timestamp", f"no UTC offset in {value!r}")
        ts = dt.timestamp()
    elif value is None:
        raise DecodeError("missing_field", "ts is required")
    else:
        raise DecodeError("wrong_type", f"ts must be a number or RFC 3339 string, got {value!r}")
    if not math.isfinite(ts):
        raise DecodeError("bad_timestamp", f"ts {value!r} is not a finite number")
    if ts < _MIN_TS:
        # The OCPP decoder's code for the same thing: an unset clock, not bad syntax.
        raise DecodeError("timestamp_before_2010", f"ts {value!r} is before 2010")
    if ts > 1e11:
        raise DecodeError("bad_timestamp", f"ts {value!r} looks like milliseconds; use seconds")
    if ts > recv + max_future_s:
        raise DecodeError("future_timestamp", f"ts {value!r} is {ts - recv:.0f}s ahead of receipt")
    return ts


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # Some firmware writes NaN/Infinity (Python's json.dumps default). Parse
        # those leniently so only the affected samples are rejected, not the batch.
        # A number beyond a double's range fails orjson too ("number is
        # infinity"): parsed leniently, it costs only its own sample (non_finite).
        if b"NaN" in payload or b"Infinity" in payload or "infinity" in str(exc):
            try:
                return json.loads(payload, parse_int=_lenient_int)
            except (ValueError, RecursionError):
                pass
        raise DecodeError("malformed_json", str(exc)) from None


# The integers orjson returns as ints; the stdlib would make any other a Python
# int of any size, which numpy refuses to convert (OverflowError).
_INT_RANGE = range(-(2**63), 2**64)


def _lenient_int(text: str) -> int | float:
    """An integer as orjson reads it: an int within 64 bits, else the nearest double
    (±inf beyond a double's range, which the decoder rejects as non_finite)."""
    if len(text) <= 20:
        value = int(text)
        if value in _INT_RANGE:
            return value
    return float(text)


def _text(payload: bytes) -> str:
    return payload[:4096].decode("utf-8", "replace")


class NativeDecoder:
    """Decodes native messages into a :class:`DecodeSink`. Never raises."""

    def __init__(
        self,
        index: ConnectorIndex,
        *,
        max_samples_per_message: int = 10_000,
        max_future_s: float = 86_400.0,
        fast_columns: bool = True,
    ) -> None:
        """``fast_columns=False`` sends every message through the general
        decoder, which plain columnar messages otherwise skip (tests compare both)."""
        if max_samples_per_message < 1:
            raise ValueError("max_samples_per_message must be >= 1")
        self.index = index
        self.max_samples = max_samples_per_message
        self.max_future_s = max_future_s
        # topic -> connector id: one dict lookup per message on the hot path.
        self._conn_by_topic: dict[str, int] = {}
        self._simd = SimdColumns(_METER_KEY_ORDER, max_samples_per_message)
        self._fast_columns = fast_columns

    def decode(
        self, route: Route, topic: str, payload: bytes, recv: float, sink: DecodeSink
    ) -> None:
        """Decode one message (the pipeline batches meter messages via decode_meters)."""
        kind = route.kind
        if kind == "meter":
            self.decode_meters([(route, topic, payload, recv)], sink)
            return
        try:
            doc = _loads(payload)
        except DecodeError as exc:
            sink.reject(topic, exc.reason, exc.detail, _text(payload), recv)
            return
        try:
            if kind == "status":
                self._status(route, doc, recv, sink)
            elif kind == "transaction":
                self._transaction(route, doc, recv, sink)
            elif kind == "heartbeat":
                ts = recv
                if isinstance(doc, dict) and doc.get("ts") is not None:
                    ts = parse_ts(doc["ts"], recv, self.max_future_s)
                elif not isinstance(doc, dict):
                    raise DecodeError("wrong_type", "heartbeat payload must be an object")
                sink.events.append(HeartbeatEvent(route.charger, ts, recv))
            elif kind == "online":
                sink.events.append(OnlineEvent(route.charger, _online(doc), recv))
            else:  # pragma: no cover - the router only produces the kinds above
                raise DecodeError("unknown_topic", f"kind {kind}")
        except DecodeError as exc:
            sink.reject(topic, exc.reason, exc.detail, doc, recv)
        except Exception as exc:  # a bug here costs this message, nothing else
            _internal_error(sink, topic, payload, recv, exc)

    # -- meter ---------------------------------------------------------------

    def decode_meters(
        self, messages: list[tuple[Route, str, bytes, float]], sink: DecodeSink
    ) -> None:
        """Many ``meter`` messages at once: the hot path.

        Single-sample messages are gathered into columns, and the columns of
        every columnar batch message are concatenated, so each kind is
        validated and converted in one vectorised pass however the stream is
        cut into messages. Per-message Python work is a JSON parse and a few
        list appends or extends.
        """
        # The parsed documents stay alive until their columns are converted:
        # with the cyclic GC on, every few hundred parses would rescan all of
        # their lists, and re-enabling it while they live would scan them once
        # more. JSON cannot hold a cycle, so pausing it until they are freed
        # (with the inner frame) loses nothing.
        with gc_paused():
            mark = SinkMark(sink)
            try:
                self._decode_meters(messages, sink)
            except Exception:
                mark.rollback(sink)
                self._simd.reset()
                self._isolate(messages, sink)
            finally:
                self._simd.reset()

    def _isolate(self, messages: list[tuple[Route, str, bytes, float]], sink: DecodeSink) -> None:
        """Decode messages whose batch raised, so the message that raises is rejected alone.

        Halves that raise are split again, then the message left alone is
        rejected as ``internal_error``: k such messages among n cost about
        k·log2(n) more decodes, not one each, and the rest keep the columnar path.
        """
        pending = [messages]
        while pending:
            part = pending.pop()
            mark = SinkMark(sink)
            try:
                self._decode_meters(part, sink)
            except Exception as exc:
                mark.rollback(sink)
                if len(part) == 1:
                    _route, topic, payload, recv = part[0]
                    _internal_error(sink, topic, payload, recv, exc)
                else:
                    half = len(part) // 2
                    pending += (part[half:], part[:half])  # the first half next
            finally:
                self._simd.reset()

    def _decode_meters(
        self, messages: list[tuple[Route, str, bytes, float]], sink: DecodeSink
    ) -> None:
        docs: list[dict[str, Any]] = []
        conns: list[int] = []
        recvs: list[float] = []
        topics: list[str] = []
        batches = _Batches()
        self._gather(messages, sink, docs, conns, recvs, topics, batches)
        n = len(docs)
        if n:
            cols: dict[str, list[Any] | None] = {
                key: [d.get(key) for d in docs] for key in _METER_KEY_ORDER
            }
            self._block(
                cols,
                n,
                np.fromiter(conns, np.int32, n),
                np.fromiter(recvs, np.float64, n),
                sink,
                lambda k: (topics[k], docs[k], recvs[k], None, ""),
            )
        if len(self._simd):
            self._simd_block(self._simd, batches, sink)
        if batches.total:
            self._block(
                batches.columns(),
                batches.total,
                np.repeat(np.array(batches.conns, np.int32), batches.sizes),
                np.repeat(np.array(batches.recvs, np.float64), batches.sizes),
                sink,
                batches.where,
            )

    def _gather(
        self,
        messages: list[tuple[Route, str, bytes, float]],
        sink: DecodeSink,
        docs: list[dict[str, Any]],
        conns: list[int],
        recvs: list[float],
        topics: list[str],
        batches: _Batches,
    ) -> None:
        conn_of = self._conn_by_topic
        simd = self._simd
        fast = self._fast_columns
        for route, topic, payload, recv in messages:
            if fast and route.connector and b'"ts":[' in payload:
                conn = conn_of.get(topic)
                if conn is None:
                    conn = conn_of[topic] = self.index.id(route.charger, route.connector)
                if simd.add(conn, topic, payload, recv):
                    continue
            try:
                doc = _loads(payload)
            except DecodeError as exc:
                sink.reject(topic, exc.reason, exc.detail, _text(payload), recv)
                continue
            if type(doc) is not dict:
                sink.reject(
                    topic, "wrong_type", f"meter payload must be an object, got {_tname(doc)}",
                    doc, recv,
                )  # fmt: skip
                continue
            if route.connector == 0:
                sink.reject(
                    topic, "bad_connector_id", "meter samples need a connector 1..64", doc, recv
                )
                continue
            conn = conn_of.get(topic)
            if conn is None:
                conn = conn_of[topic] = self.index.id(route.charger, route.connector)
            if type(doc.get("ts")) is list:
                self._meter_batch(batches, conn, topic, doc, recv, sink)
                continue
            docs.append(doc)
            conns.append(conn)
            recvs.append(recv)
            topics.append(topic)

    def _meter_batch(
        self,
        batches: _Batches,
        conn: int,
        topic: str,
        doc: dict[str, Any],
        recv: float,
        sink: DecodeSink,
    ) -> None:
        ts_list: list[Any] = doc["ts"]
        n = len(ts_list)
        if n == 0:
            sink.reject(topic, "empty_batch", "ts is an empty array", doc, recv)
            return
        if n > self.max_samples:
            detail = f"{n} samples > limit {self.max_samples}"
            sink.reject(topic, "oversized", detail, {"ts": f"[{n} values]"}, recv)
            return
        for key in _METER_KEY_ORDER:
            col = doc.get(key)
            if col is not None and (type(col) is not list or len(col) != n):
                detail = f"{key} must be an array of {n} values"
                sink.reject(topic, "length_mismatch", detail, doc, recv)
                return
        batches.add(conn, topic, doc, recv, n)

    def _simd_block(self, simd: SimdColumns, batches: _Batches, sink: DecodeSink) -> None:
        """The block of the plain columnar messages simdjson read.

        A message with any sample to reject goes back to the general decoder
        whole (into ``batches``), so its rejections read exactly as they would
        have; the rest are stored as they are.
        """
        n = simd.total
        sizes = np.array(simd.sizes, np.int64)
        ts = simd.column("ts")
        assert ts is not None  # every plain message has its ts array
        values = np.full((n, N_FIELDS), np.nan)
        for key, i in _SCALARS:
            col = simd.column(key)
            if col is not None:
                values[:, i] = col
        for key, i in _PHASED:
            col = simd.column(key)
            if col is not None:
                values[:, i : i + 3] = col
        recv = np.repeat(np.array(simd.recvs, np.float64), sizes)
        with np.errstate(invalid="ignore"):
            bad = (
                (ts < _MIN_TS)
                | (ts > recv + self.max_future_s)
                | ((values < _LO) | (values > _HI)).any(axis=1)
            )
        conn = np.repeat(np.array(simd.conns, np.int32), sizes)
        if bad.any():
            message = np.repeat(np.arange(len(sizes)), sizes)
            redo = np.unique(message[bad])
            for m in redo.tolist():
                topic, payload, at = simd.topics[m], simd.payloads[m], simd.recvs[m]
                doc = _loads(payload)
                self._meter_batch(batches, simd.conns[m], topic, doc, at, sink)
            keep = ~np.isin(message, redo)
            if not keep.any():
                return
            conn, ts, recv, values = conn[keep], ts[keep], recv[keep], values[keep]
        sink.meter.add_block(MeterBatch(conn, ts, recv, values))

    def _block(
        self,
        cols: dict[str, list[Any] | None],
        n: int,
        conn: NDArray[np.int32],
        recv: NDArray[np.float64],
        sink: DecodeSink,
        where: Any,
    ) -> None:
        """Validate columns of n samples; add the good rows, reject the bad ones."""
        values = np.full((n, N_FIELDS), np.nan)
        bad: dict[int, tuple[str, str]] = {}

        def mark(rows: Any, reason: str, detail: str) -> None:
            for r in rows:
                bad.setdefault(int(r), (reason, detail))

        ts = self._ts_column(cols["ts"], recv, mark)
        for key, i in _SCALARS:
            col = cols.get(key)
            if col is not None:
                values[:, i] = _column(col, key, mark)
        for key, i in _PHASED:
            col = cols.get(key)
            if col is not None:
                values[:, i : i + 3] = _phased_column(col, key, mark)
        with np.errstate(invalid="ignore"):
            out = ~np.isnan(values) & ((values < _LO) | (values > _HI))
        if out.any():
            for r in np.flatnonzero(out.any(axis=1)):
                f = int(np.flatnonzero(out[r])[0])
                v = float(values[r, f])
                name = _FIELD_NAMES[f]
                if math.isinf(v):  # Infinity, or a number beyond a double's range
                    mark([r], "non_finite", f"{name} is {v!r}")
                else:
                    mark([r], "out_of_range", f"{name}={v!r} outside {LIMITS[name]}")
        if bad:
            good = np.ones(n, np.bool_)
            for k, (reason, detail) in sorted(bad.items()):
                good[k] = False
                topic, payload, at, index, prefix = where(k)
                sink.reject(topic, reason, prefix + detail, payload, at, index=index)
            if not good.any():
                return
            conn, ts, recv, values = conn[good], ts[good], recv[good], values[good]
        sink.meter.add_block(MeterBatch(conn, ts, recv, values))

    def _ts_column(
        self, col: list[Any] | None, recv: NDArray[np.float64], mark: Any
    ) -> NDArray[np.float64]:
        n = recv.shape[0]
        if col is None:
            mark(range(n), "missing_field", "ts is required")
            return np.full(n, np.nan)
        try:
            ts = np.array(col, dtype=np.float64)
            if ts.ndim != 1 or bool in set(map(type, col)):
                raise TypeError
        except (TypeError, ValueError):
            ts = np.full(n, np.nan)
            for k, v in enumerate(col):
                try:
                    ts[k] = parse_ts(v, float(recv[k]), self.max_future_s)
                except DecodeError as exc:
                    mark([k], exc.reason, exc.detail)
            return ts
        suspect = ~np.isfinite(ts) | (ts < _MIN_TS) | (ts > recv + self.max_future_s)
        for k in np.flatnonzero(suspect).tolist():
            try:
                parse_ts(col[k], float(recv[k]), self.max_future_s)
            except DecodeError as exc:
                mark([k], exc.reason, exc.detail)
        return ts

    # -- events ----------------------------------------------------------------

    def _status(self, route: Route, doc: Any, recv: float, sink: DecodeSink) -> None:
        if not isinstance(doc, dict):
            raise DecodeError("wrong_type", f"status payload must be an object, got {_tname(doc)}")
        ts = parse_ts(doc.get("ts", recv), recv, self.max_future_s)
        status = doc.get("status")
        if status not in CONNECTOR_STATUSES:
            raise DecodeError(
                "unknown_status", f"status {status!r}; expected one of {list(CONNECTOR_STATUSES)}"
            )
        error_code = doc.get("error_code", "NoError")
        if error_code not in ERROR_CODES:
            raise DecodeError("unknown_error_code", f"error_code {error_code!r}")
        sink.events.append(
            StatusEvent(
                route.charger,
                route.connector,
                ts,
                recv,
                status,
                error_code,
                _str(doc, "info"),
                _str(doc, "vendor_error_code"),
            )
        )

    def _transaction(self, route: Route, doc: Any, recv: float, sink: DecodeSink) -> None:
        if not isinstance(doc, dict):
            raise DecodeError(
                "wrong_type", f"transaction payload must be an object, got {_tname(doc)}"
            )
        if route.connector == 0:
            raise DecodeError("bad_connector_id", "transactions need a connector 1..64")
        ts = parse_ts(doc.get("ts"), recv, self.max_future_s)
        event = doc.get("event")
        if event not in ("start", "update", "stop"):
            raise DecodeError("wrong_value", f"event {event!r}; expected start, update or stop")
        tid = doc.get("transaction_id")
        if type(tid) is int:
            tid = str(tid)
        if not isinstance(tid, str) or not tid or len(tid) > 64:
            raise DecodeError("missing_field", "transaction_id must be a non-empty string")
        meter = doc.get("meter_wh")
        if meter is not None:
            if type(meter) not in _NUM:
                raise DecodeError("wrong_type", f"meter_wh must be a number, got {meter!r}")
            if not (LIMITS["energy_wh"][0] <= meter <= LIMITS["energy_wh"][1]):
                raise DecodeError("out_of_range", f"meter_wh={meter!r}")
        sink.events.append(
            TransactionEvent(
                route.charger,
                route.connector,
                ts,
                recv,
                event,
                tid,
                None if meter is None else float(meter),
                id_tag=_str(doc, "id_tag"),
                reason=_str(doc, "reason"),
                signed_data=_str(doc, "signed_data", 65536),
            )
        )


def _internal_error(
    sink: DecodeSink, topic: str, payload: bytes, recv: float, exc: Exception
) -> None:
    """Reject a message whose decoding raised (a bug): kept whole, with what was raised."""
    sink.reject(topic, "internal_error", f"{type(exc).__name__}: {exc}", _text(payload), recv)


class _Batches:
    """The columns of many columnar meter messages, concatenated."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {key: [] for key in _METER_KEY_ORDER}
        self.seen: set[str] = set()
        self.conns: list[int] = []
        self.recvs: list[float] = []
        self.sizes: list[int] = []
        self.starts: list[int] = []
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.total = 0

    def add(self, conn: int, topic: str, doc: dict[str, Any], recv: float, n: int) -> None:
        for key, col in self.cols.items():
            values = doc.get(key)
            if values is None:
                col.extend(itertools.repeat(None, n))
            else:
                col.extend(values)
                self.seen.add(key)
        self.conns.append(conn)
        self.recvs.append(recv)
        self.sizes.append(n)
        self.starts.append(self.total)
        self.messages.append((topic, doc))
        self.total += n

    def columns(self) -> dict[str, list[Any] | None]:
        # A key no message carried stays None: no all-NaN column to convert.
        return {key: (col if key in self.seen else None) for key, col in self.cols.items()}

    def where(self, k: int) -> tuple[str, dict[str, Any], float, int, str]:
        """The message and position of sample k, for its rejection record."""
        i = bisect.bisect_right(self.starts, k) - 1
        j = k - self.starts[i]
        topic, doc = self.messages[i]
        return topic, _sample(doc, j, self.sizes[i]), self.recvs[i], j, f"sample {j}: "


_NUMERIC = frozenset((int, float))
_NUMERIC_OR_NONE = frozenset((int, float, type(None)))
_LIST_OR_NONE = frozenset((list, type(None)))


def _column(col: list[Any], key: str, mark: Any) -> NDArray[np.float64]:
    """A scalar field's column; None -> NaN (a value one sample did not report)."""
    # numpy would silently take True as 1.0 and "7" as 7.0: only columns made of
    # numbers (and None) take the fast path; anything else is checked per value.
    if set(map(type, col)) <= _NUMERIC_OR_NONE:
        arr = np.array(col, dtype=np.float64)
        nan = np.isnan(arr)
        if nan.any():
            for k in np.flatnonzero(nan).tolist():
                if col[k] is not None:  # a NaN literal, not a missing value
                    mark([k], "non_finite", f"{key} is NaN")
        return arr
    out = np.full(len(col), np.nan)
    for k, v in enumerate(col):
        if v is None:
            continue
        if type(v) not in _NUM:
            mark([k], "wrong_type", f"{key} must be a number, got {v!r}")
        elif v != v:  # noqa: PLR0124 - NaN literal from a lenient parse
            mark([k], "non_finite", f"{key} is NaN")
        else:
            out[k] = v
    return out


def _phased_column(col: list[Any], key: str, mark: Any) -> NDArray[np.float64]:
    """Per-phase values: each sample a number, a list of 1-3 numbers, or None."""
    n = len(col)
    out = np.full((n, 3), np.nan)
    outer = set(map(type, col))
    if outer <= _NUMERIC_OR_NONE:  # one number per sample: phase 1
        out[:, 0] = np.array(col, dtype=np.float64)
        for k in np.flatnonzero(np.isnan(out[:, 0])).tolist():
            if col[k] is not None:
                mark([k], "non_finite", f"{key} holds NaN")
        return out
    if outer <= _LIST_OR_NONE:
        gaps = type(None) in outer
        rows = [k for k, v in enumerate(col) if v is not None] if gaps else range(n)
        lists = [col[k] for k in rows] if gaps else col
        flat = list(itertools.chain.from_iterable(lists))
        widths = np.fromiter(map(len, lists), np.int64, len(lists))
        if (
            widths.size
            and int(widths.min()) >= 1
            and int(widths.max()) <= 3
            and set(map(type, flat)) <= _NUMERIC
        ):
            # Scatter the flattened values to (row, phase); widths may differ
            # from sample to sample (one-phase and three-phase connectors).
            row = np.repeat(np.asarray(rows, np.int64), widths)
            phase = np.arange(row.size) - np.repeat(np.cumsum(widths) - widths, widths)
            arr = np.array(flat, dtype=np.float64)
            out[row, phase] = arr
            for k in np.unique(row[np.isnan(arr)]).tolist():
                mark([k], "non_finite", f"{key} holds NaN")  # NaN literals
            return out
    for k, v in enumerate(col):
        if v is None:
            continue
        if type(v) in _NUM and v == v:  # noqa: PLR0124 - rejects NaN literals
            out[k, 0] = v
        elif isinstance(v, list) and 1 <= len(v) <= 3:
            for j, x in enumerate(v):
                if x is None:
                    continue
                if type(x) not in _NUM:
                    mark([k], "wrong_type", f"{key}[{j}] must be a number, got {x!r}")
                elif x != x:  # noqa: PLR0124
                    mark([k], "non_finite", f"{key}[{j}] is NaN")
                else:
                    out[k, j] = x
        else:
            mark([k], "wrong_type", f"{key} must be a number or 1-3 numbers, got {v!r}")
    return out


def _online(doc: Any) -> bool:
    if isinstance(doc, dict):
        doc = doc.get("online")
    if doc in (True, 1, "true", "online", "1"):
        return True
    if doc in (False, 0, "false", "offline", "0"):
        return False
    raise DecodeError("wrong_value", f"online flag must be true or false, got {doc!r}")


def _str(doc: dict[str, Any], key: str, limit: int = 512) -> str:
    v = doc.get(key)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise DecodeError("wrong_type", f"{key} must be a string, got {v!r}")
    if len(v) > limit:
        raise DecodeError("oversized", f"{key} longer than {limit} characters")
    return v


def _tname(v: Any) -> str:
    return type(v).__name__


def _sample(doc: dict[str, Any], k: int, n: int) -> dict[str, Any]:
    """The k-th sample of a columnar message, for the dead-letter record."""
    return {
        key: (col[k] if isinstance(col, list) and len(col) == n else col)
        for key, col in doc.items()
        if key in _METER_KEYS
    }
