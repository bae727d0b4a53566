"""``zengine db`` refusals: one line naming the cause, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.sql.conftest import KEY_1
from tests.sql.test_sql_cli import write_config
from zengine.cli import main


@pytest.fixture(autouse=True)
def _no_environment_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ZENGINE_CONFIG", "ZENGINE_PLUGINS__SQL__URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("argv", [["db", "upgrade", "--revision", "nosuchrev"],
                                  ["db", "downgrade", "nosuchrev"]], ids=" ".join)
def test_an_unknown_revision_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str]) -> None:
    cfg = write_config(tmp_path / "z.toml", make_url(f"sqlite:///{tmp_path}/z.db"),
                       {"k1": KEY_1})
    assert main([*argv, "--config", str(cfg)]) == 1  # raised alembic's CommandError before
    err = capsys.readouterr().err
    assert err.startswith(f"zengine: db {argv[1]} nosuchrev: ") and "'nosuchrev'" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_downgrade_to_a_revision_ahead_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "z.toml", make_url(f"sqlite:///{tmp_path}/z.db"),
                       {"k1": KEY_1})
    assert main(["db", "upgrade", "--revision", "0001", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["db", "downgrade", "0002", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zengine: db downgrade 0002: ") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["db", "upgrade", "--revision", ""], ["db", "downgrade", ""]],
                         ids=lambda argv: argv[1])
def test_an_empty_revision_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       argv: list[str]) -> None:
    cfg = write_config(tmp_path / "z.toml", make_url(f"sqlite:///{tmp_path}/z.db"),
                       {"k1": KEY_1})
    assert main([*argv, "--config", str(cfg)]) == 1  # an AssertionError in Alembic before
    err = capsys.readouterr().err
    assert err.startswith(f"zengine: db {argv[1]}: ") and "empty" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_database_never_migrated_says_to_run_db_upgrade(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Quickstart's SQLite: ``users show`` before ``db upgrade`` said only ``no such
    table: zengine_users`` (PostgreSQL's and MariaDB's missing table had the hint)."""
    cfg = write_config(tmp_path / "z.toml", make_url(f"sqlite:///{tmp_path}/z.db"),
                       {"k1": KEY_1})
    assert main(["users", "show", "alice", "--config", str(cfg)]) != 0
    err = capsys.readouterr().err
    assert "no such table" in err and "run `zengine db upgrade`" in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
