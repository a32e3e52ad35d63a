"""A seeded fleet simulator: realistic sessions, injectable faults, ground truth."""
