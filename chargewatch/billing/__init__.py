"""Sessions, per-session energy, OCPI 2.2.1 tariffs and CDRs (pure, no I/O)."""
