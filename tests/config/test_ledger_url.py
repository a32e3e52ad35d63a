"""``ledger.url``: SQLite stays the default; PostgreSQL with a password file and TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.config.settings import load_config
from chargewatch.core.errors import ConfigError
from chargewatch.storage.sqldb import ledger_name, redact, sqlite_path


def test_sqlite_urls_and_paths(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text("ledger:\n  url: sqlite:///data/l.sqlite\n")
    cfg = load_config(f, env={})
    assert cfg.ledger_url == str(tmp_path / "data/l.sqlite") and cfg.ledger_pg is None
    f.write_text("ledger:\n  url: sqlite:////var/lib/cw/l.sqlite\n")
    assert load_config(f, env={}).ledger_url == "/var/lib/cw/l.sqlite"
    f.write_text("{}\n")
    assert load_config(f, env={}).ledger_url is None  # DATA_DIR/ledger.sqlite, as before
    assert sqlite_path("plain/file.db") == "plain/file.db"
    with pytest.raises(ValueError, match="sqlite:///"):
        sqlite_path("sqlite://host/x")


def test_postgresql_with_password_file_and_tls(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    f = tmp_path / "cw.yaml"
    f.write_text(
        "ledger:\n  url: postgresql://cw@db.example:5432/chargewatch\n"
        "  password_file: pw\n  sslmode: verify-full\n  sslrootcert: /etc/ca.pem\n"
    )
    cfg = load_config(f, env={})
    assert cfg.ledger_url == "postgresql://cw@db.example:5432/chargewatch"
    assert cfg.ledger_pg is not None
    assert dict(cfg.ledger_pg.params) == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "password": "s3cret",
    }
    info = cfg.ledger_pg.conninfo(cfg.ledger_url)
    assert "password=s3cret" in info and "sslmode=verify-full" in info
    # The URL from the environment, as every other key.
    f.write_text("{}\n")
    env = {"CHARGEWATCH__LEDGER__URL": "postgresql://cw@h/db"}
    assert load_config(f, env=env).ledger_url == "postgresql://cw@h/db"


def test_url_and_path_together_is_a_mistake(tmp_path: Path) -> None:
    f = tmp_path / "cw.yaml"
    f.write_text("ledger:\n  url: postgresql://h/db\n  path: l.sqlite\n")
    with pytest.raises(ConfigError, match="not both"):
        load_config(f, env={})


def test_a_url_password_never_reaches_a_log() -> None:
    assert redact("postgresql://cw:pw@h:5432/db") == "postgresql://cw:***@h:5432/db"
    assert ledger_name("postgresql://cw:pw@h/db?sslmode=require") == "db"
