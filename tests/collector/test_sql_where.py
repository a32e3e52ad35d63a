"""The ledger readers' one WHERE builder: parameterised, optional filters, qualified columns."""

from __future__ import annotations

import sqlite3

import pytest

from chargewatch.storage.sql_where import Where, session_where


def test_unset_filters_leave_no_clause() -> None:
    where = session_where()
    assert (where.sql, where.args) == ("", [])


def test_set_filters_are_anded_with_their_values_apart() -> None:
    where = session_where("c", start_from=10.0, start_to=20.0, site="depot")
    assert where.sql == " WHERE c.start >= ? AND c.start < ? AND c.site = ?"
    assert where.args == [10.0, 20.0, "depot"]


def test_values_never_become_sql_text() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE sessions (start REAL, charger_id TEXT, site TEXT)")
    db.execute("INSERT INTO sessions VALUES (1, 'CP1', 'a'), (2, 'CP2', 'b')")
    hostile = "x' OR '1'='1"
    where = session_where(charger=hostile)
    assert db.execute(f"SELECT * FROM sessions{where.sql}", where.args).fetchall() == []
    where = session_where(charger="CP2")
    assert db.execute(f"SELECT site FROM sessions{where.sql}", where.args).fetchall() == [("b",)]


@pytest.mark.parametrize(
    ("table", "column", "op"), [("c;", "start", "="), ("", "a b", "="), ("", "start", "LIKE")]
)
def test_columns_operators_and_tables_are_checked(table: str, column: str, op: str) -> None:
    with pytest.raises(ValueError):
        Where(table).compare(column, op, 1)
