"""``zengine check-config`` (with ``--probe``) and ``zengine serve``'s choice of config file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from zengine import cli


def copy_example(tmp_path: Path, extra: str = "") -> Path:
    for name in ("zengine.example.toml", "users.example.toml"):
        shutil.copy(EXAMPLE_CONFIG.parent / name, tmp_path / name)
    (tmp_path / "users.example.toml").chmod(0o600)
    config = tmp_path / "zengine.example.toml"
    config.write_text(config.read_text() + extra)
    return config


def test_check_config_probe_reports_a_database_never_migrated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "zengine.db"
    config = copy_example(tmp_path, f'\n[plugins.sql]\nurl = "sqlite:///{db}"\n')
    assert cli.main(["check-config", "--config", str(config)]) == 0
    assert "probe sql" not in capsys.readouterr().out
    assert cli.main(["check-config", "--probe", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "probe sql: NOT READY: schema not at head" in out
    assert "never migrated" in out and "zengine db upgrade" in out
    assert cli.main(["db", "upgrade", "--config", str(config)]) == 0
    capsys.readouterr()
    assert cli.main(["check-config", "--probe", "--config", str(config)]) == 0
    assert "probe sql: ready" in capsys.readouterr().out


def test_check_config_warns_on_secret_files_readable_by_others(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_example(tmp_path)
    users = tmp_path / "users.example.toml"
    assert cli.main(["check-config", "--config", str(config)]) == 0
    assert "warning" not in capsys.readouterr().out
    users.chmod(0o644)
    assert cli.main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"warning: [plugins.static] users_file {users} is readable by other users" in out
    assert f"chmod 600 {users}" in out


def test_check_config_refuses_unknown_disabled_plugin_and_no_builder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = copy_example(tmp_path)
    config.write_text(config.read_text().replace("disabled = []", 'disabled = ["ldpa"]'))
    assert cli.main(["check-config", "--config", str(config)]) == 2
    assert "disabled names ['ldpa']" in capsys.readouterr().err
    config.write_text(config.read_text().replace('disabled = ["ldpa"]', 'disabled = ["zoiper"]'))
    assert cli.main(["check-config", "--config", str(config)]) == 2
    assert "no loaded plugin builds documents" in capsys.readouterr().err


def test_environment_override_error_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZENGINE_SERVER__PORT", "eighty")
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert "environment variable ZENGINE_SERVER__PORT" in err and "'port'" in err
    monkeypatch.delenv("ZENGINE_SERVER__PORT")
    monkeypatch.setenv("ZENGINE_PLUGINS__SQL__POOL_SIZE", "many")
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    assert "environment variable ZENGINE_PLUGINS__SQL__POOL_SIZE" in capsys.readouterr().err


def test_serve_without_config_refuses_the_inert_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ZENGINE_CONFIG", raising=False)
    monkeypatch.setattr(cli, "SYSTEM_CONFIG", str(tmp_path / "absent.toml"))
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "no config file" in err and "--config" in err and "ZENGINE_CONFIG" in err
    assert cli.serve_config_path(None, {"ZENGINE_CONFIG": "/x.toml"}) == "/x.toml"
    system = tmp_path / "zengine.toml"
    system.write_text("")
    monkeypatch.setattr(cli, "SYSTEM_CONFIG", str(system))
    assert cli.serve_config_path(None, {}) == str(system)
    assert cli.serve_config_path("given.toml", {"ZENGINE_CONFIG": "/x.toml"}) == "given.toml"
