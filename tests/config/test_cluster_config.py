"""The ``cluster`` section: dynamic partitions need PostgreSQL and exclude static ones."""

from __future__ import annotations

import pytest

from chargewatch.config.settings import ClusterConfig, parse_config
from chargewatch.core.errors import ConfigError
from chargewatch.core.yamlsrc import Source

PG = {"url": "postgresql://cw@db/cw"}


def parse(data: dict[str, object]) -> ClusterConfig:
    return parse_config(Source("c.yaml", data), env={}).cluster


def test_off_by_default() -> None:
    assert not parse({}).enabled


def test_read_with_defaults() -> None:
    c = parse({"cluster": {"partitions": 64}, "ledger": PG})
    assert c.enabled and c.partitions == 64
    assert c.lease_s == 15.0 and 4 / 3 * c.lease_s <= 30  # takeover within 30 s by default
    assert c.session_prefix == "chargewatch"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cluster": {"partitions": 8}}, "need ledger.url: postgresql"),
        ({"cluster": {"partitions": 8}, "ledger": {"url": "l.sqlite"}}, "need ledger.url"),
        (
            {
                "cluster": {"partitions": 8},
                "ledger": PG,
                "mqtt": {"partition": {"chargers": ["A"]}},
            },
            "not both",
        ),
        ({"cluster": {"partitions": -1}, "ledger": PG}, "0 (off) to 4096"),
        ({"cluster": {"partitions": 8, "lease_s": 0.5}, "ledger": PG}, "1 to 300 s"),
        ({"cluster": {"partitions": 8, "session_prefix": "a/b"}, "ledger": PG}, "letters"),
        ({"cluster": {"partition": 8}, "ledger": PG}, "partition"),
    ],
)
def test_problems_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert message in str(err.value)
