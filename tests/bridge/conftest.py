"""The bridge tests get a broker of their own.

The bridge publishes retained `ev/<id>/online` flags (that is its contract), and
some of these tests restart the broker. On the session-wide broker the retained
flags would reach every later test that subscribes to `ev/#`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _start
from tests.services import Mosquitto


@pytest.fixture(scope="module")
def mosquitto() -> Iterator[Mosquitto]:
    svc = _start(Mosquitto)
    yield svc
    svc.cleanup()
