"""Subcommands owned by the collector: run, demo, replay, record."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the collector's subcommands (filled in as they land)."""
