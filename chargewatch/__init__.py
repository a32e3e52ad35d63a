"""chargewatch: monitoring, alerting and per-session billing data for fleets of EV chargers."""

__version__ = "0.1.0"
__all__ = ["__version__"]
