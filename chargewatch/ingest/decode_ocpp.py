"""Decode OCPP-J 1.6 and 2.0.1 frames forwarded over MQTT into meter rows and events.

Topic ``ocpp/<version>/<chargerId>/<source>`` (docs/architecture.md "OCPP-J frames
over MQTT"); the router splits it and calls :meth:`OcppDecoder.decode`.

Contract: ``decode`` never raises. Every frame, or part of a frame, that is not
used becomes ``sink.reject(topic, reason, detail, payload, recv, index,
value_index)`` with one of the stable reasons in :data:`REASONS`; ``index`` is
the meterValue (or NotifyEvent eventData) position when only part of a frame was
rejected, ``value_index`` the sampledValue's when only that value was.

What is rejected, and how much of the frame goes with it:

* the frame itself (not JSON, not an OCPP-J frame, unknown action, schema
  violation outside the meter values, bad frame-level timestamp): the whole
  frame, nothing emitted;
* a meterValue whose timestamp is bad, future or pre-2010: that meterValue only;
* a sampledValue that violates the schema, has an unknown unit, a value that is
  not a number, not finite or out of range: that sample only. The frame's other
  samples are independent readings of the same instant and are kept. The one
  dependency: a total power summed from per-phase values is left out when any
  phase was rejected (a partial sum would look like phase loss);
* a negative Energy.Active.Import.Register (a meter fault, not garbage): kept
  in the batch row so that MeterRegression sees the fall, rejected for billing
  only (``negative_register``; its MeterReading has ``energy_wh=None`` and the
  flag ``register_negative``);
* meterStart/meterStop that are impossible: the value only, the transaction
  event is still emitted with ``meter_wh=None`` and the flag ``meter_rejected``.

Valid frames of actions that carry no telemetry (Authorize, DataTransfer, ...)
are not rejected; they are counted in :attr:`OcppDecoder.ignored`.
Accepted deviations from the spec are counted in :attr:`OcppDecoder.quirks`
(see :data:`QUIRKS`); where a sample's value goes is decided in
:mod:`chargewatch.ingest.ocpp.units`.

Correlation (:mod:`chargewatch.ingest.ocpp.correlation`): a 1.6 StartTransaction
becomes a start :class:`TransactionEvent` when the CSMS's answer (``csms``
topic) brings the transaction id, or after ``pending_timeout`` with
``transaction_id=""`` and the flag ``transaction_id_unknown``. Answers to
chargewatch's own commands (CALLs on the ``command`` topic, or announced with
:meth:`OcppDecoder.note_command`) become :class:`CommandResult` events. The
heartbeat interval a charger is given (the BootNotification answer's ``interval``,
an accepted 1.6 ChangeConfiguration HeartbeatInterval or 2.0.1 SetVariables
OCPPCommCtrlr.HeartbeatInterval, or the value a GetConfiguration/GetVariables
answer reports) becomes a :class:`HeartbeatIntervalEvent`; the meter-value
intervals (1.6 MeterValueSampleInterval and ClockAlignedDataInterval, 2.0.1
SampledDataCtrlr.TxUpdatedInterval and AlignedDataCtrlr.Interval: set and
accepted, or reported) become :class:`MeterIntervalEvent` (see
:mod:`chargewatch.ingest.ocpp.meter_intervals`); every interval learned is
counted in :attr:`OcppDecoder.learned`. Call
:meth:`OcppDecoder.expire` periodically so that silent chargers' pending CALLs
expire too; each charger's own frames expire its state as they arrive.

Mapping choices: a 2.0.1 EVSE is chargewatch's connector (``evseId`` /
``evse.id``; 0 = the station); 2.0.1 Occupied becomes Preparing, Charging,
SuspendedEV/EVSE or Finishing from the EVSE's transaction, and a chargingState
change while Occupied emits a derived StatusEvent; NotifyEvent problems become
:class:`ProblemEvent` with the 1.6 error code they map onto.

This module is the decoder's contract (the above and :data:`REASONS`); the
implementation is the :mod:`chargewatch.ingest.ocpp` package, one concern per module.
"""

from __future__ import annotations

__all__ = ["QUIRKS", "REASONS", "OcppDecoder"]

from typing import Final

from chargewatch.ingest.ocpp.decoder import OcppDecoder
from chargewatch.ingest.ocpp.quirks import QUIRKS

#: Every rejection reason this decoder produces.
REASONS: Final = (
    "unknown_version",  # topic version is not 1.6 or 2.0.1
    "unknown_source",  # topic source is not cp, csms or command
    "malformed_json",  # payload is not JSON
    "not_a_frame",  # JSON but not [2,id,action,{}], [3,id,{}] or [4,id,code,desc,{}]
    "unknown_action",  # a CALL naming an action the version does not define
    "schema_violation",  # fails the official JSON schema; detail = JSON path + message
    "bad_timestamp",  # not an RFC 3339 date-time
    "future_timestamp",  # more than ``future_tolerance`` after receipt
    "timestamp_before_2010",  # older than any OCPP charger's clock can honestly be
    "bad_number",  # a 1.6 sampledValue.value that does not parse as a number
    "non_finite",  # NaN or ±Infinity
    "out_of_range",  # outside ocpp.units.FIELD_RANGE, bad meterStart/Stop or connector id
    "negative_register",  # a register below zero: in the batch, not billed (value only)
    "unknown_unit",  # a unit that does not fit the measurand
    "duplicate_call",  # the same CALL again, byte for byte (a retransmission)
    "duplicate_result",  # the same answer again to an already answered CALL
    "orphan_result",  # an answer that matched no CALL within ``pending_timeout``
    "unexpected_frame",  # a CALLRESULT/CALLERROR on the command topic
    "internal_error",  # a bug in this decoder; the frame is dropped, the loop goes on
)
