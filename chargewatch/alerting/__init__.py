"""Operator alert rules: expression language, evaluation and alert state (pure, no I/O)."""
