"""Vectorised fault and anomaly detectors (pure numpy/scipy, no I/O).

One module per fault family (liveness, meter, electrical, session), one
protocol (:class:`Detector`: ``update(frame, events, index, now)`` and
``tick(now)``), and :class:`DetectorSet`, which cleans each
:class:`~chargewatch.model.batch.MeterBatch` once and runs them all. See
docs/detectors.md for what each detector catches and ignores.
"""

from chargewatch.detectors.base import Detector
from chargewatch.detectors.detector_set import DETECTORS, DetectorSet
from chargewatch.detectors.episodes import Finding
from chargewatch.detectors.params import FAULTS, PARAMS, DetectorConfig
from chargewatch.detectors.sequencer import Events, Frame

__all__ = [
    "DETECTORS",
    "FAULTS",
    "PARAMS",
    "Detector",
    "DetectorConfig",
    "DetectorSet",
    "Events",
    "Finding",
    "Frame",
]
