"""HTML reports over the analytics: ``chargewatch report``."""
