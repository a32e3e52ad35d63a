"""Where the shipped defaults (rules, tariffs, dashboards) are.

In a checkout they are the top-level folders of the repository (DESIGN.md's
layout); an installed wheel carries them in ``chargewatch/_defaults``.
"""

from __future__ import annotations

__all__ = ["default_dir"]

from pathlib import Path


def default_dir(name: str) -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / name, here / "_defaults" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped {name}/ folder is missing from this installation")
