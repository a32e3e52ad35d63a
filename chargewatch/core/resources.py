"""Where the shipped defaults (rules, tariffs, dashboards) are.

In a checkout they are the top-level folders of the repository; an installed
wheel carries them in ``chargewatch/_defaults``.
"""

from __future__ import annotations

__all__ = ["default_dir", "shared_data_dir"]

from pathlib import Path

# chargewatch/core/resources.py -> chargewatch/
_PACKAGE = Path(__file__).resolve().parents[1]


def default_dir(name: str) -> Path:
    """The shipped ``rules``, ``tariffs`` or ``dashboards`` folder."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / "_defaults" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped {name}/ folder is missing from this installation")


def shared_data_dir() -> Path:
    """The project's shared datasets (ACN-Data JPL, Norwegian sessions).

    ``$CHARGEWATCH_SHARED_DATA`` if set, else ``shared/data`` beside the
    checkout (where CI puts it), else ``/work/shared/data``. The returned path
    may not exist: callers say so.
    """
    import os  # noqa: PLC0415

    env = os.environ.get("CHARGEWATCH_SHARED_DATA")
    if env:
        return Path(env)
    beside = _PACKAGE.parents[1] / "shared" / "data"
    return beside if beside.is_dir() else Path("/work/shared/data")
