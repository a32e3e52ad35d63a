"""Vectorised fault and anomaly detectors (pure numpy/scipy, no I/O)."""
