"""Settings of the SQL backend: sources of the URL and keys, presets, clear errors, docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

import zengine_sql
from tests.sql.conftest import KEY_1, KEY_2
from zengine.errors import ConfigError
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine_sql.crypto import load_keys
from zengine_sql.settings import MappingSettings, SqlSettings
from zengine_sql.state import SqlState

DOC = Path(__file__).resolve().parents[2] / "docs" / "backends" / "sql.md"


def _runtime(data: dict[str, object], environ: dict[str, str] | None = None,
             base_dir: Path | None = None) -> SqlState | None:
    settings = settings_from_mapping(data, environ=environ or {}, base_dir=base_dir)
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("sql", zengine_sql)])
    runtime.start()
    state = zengine_sql.get_state(runtime)
    runtime.stop()
    return state


def test_url_from_environment_and_file(tmp_path: Path) -> None:
    state = _runtime({}, {"ZENGINE_PLUGINS__SQL__URL": "sqlite:///env.db"}, base_dir=tmp_path)
    assert state is not None and state.url.database == str(tmp_path / "env.db")
    secret = tmp_path / "url.txt"
    secret.write_text("postgresql+psycopg://zengine:hunter2@db.invalid/zengine\n",
                      encoding="utf-8")
    state = _runtime({"plugins": {"sql": {"url_file": str(secret)}}})
    assert state is not None and state.url.password == "hunter2"
    assert "hunter2" not in repr(state) and "hunter2" not in repr(state.url)


def test_bad_url_does_not_echo_it() -> None:
    with pytest.raises(ConfigError) as exc:
        _runtime({"plugins": {"sql": {"url": "not a url with hunter2"}}})
    assert "hunter2" not in str(exc.value)


def test_keys_from_file_and_environment(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'k1 = "{KEY_1}"\n', encoding="utf-8")
    state = _runtime({"plugins": {"sql": {"url": "sqlite://", "encryption_keys_file": str(keys),
                                          "encryption_key_id": "k2"}}},
                     {"ZENGINE_PLUGINS__SQL__ENCRYPTION_KEYS__K2": KEY_2})
    assert state is not None and state.box is not None
    assert state.box.current == "k2" and set(state.box.keys) == {"k1", "k2"}
    assert state.box.decrypt(state.box.encrypt("x")).get_secret_value() == "x"


@pytest.mark.parametrize(("config", "message"), [
    ({"encryption_keys": {"k1": "dG9vIHNob3J0"}}, "must be 32 bytes"),
    ({"encryption_keys": {"k1": KEY_1, "k2": KEY_2}}, "set encryption_key_id"),
    ({"encryption_keys": {"k1": KEY_1}, "encryption_key_id": "k3"}, "not among the keys"),
])
def test_key_errors(config: dict[str, object], message: str) -> None:
    settings = settings_from_mapping({}, environ={})
    with pytest.raises(ConfigError, match=message):
        load_keys(SqlSettings.model_validate({"url": "sqlite://", **config}), settings)


def test_presets_and_overrides() -> None:
    config = SqlSettings.model_validate({"url": "sqlite://", "mode": "mapping",
                                         "preset": "asterisk_pjsip",
                                         "mapping": {"domain": "pbx.example.net"}})
    assert config.mapping is not None
    assert (config.mapping.table, config.mapping.ha1_column, config.mapping.domain) == (
        "ps_auths", "md5_cred", "pbx.example.net")
    with pytest.raises(ValueError, match="needs a preset"):
        SqlSettings.model_validate({"url": "sqlite://", "mode": "mapping"})
    with pytest.raises(ValueError, match="password_column or ha1_column"):
        MappingSettings.model_validate({"table": "t", "login_column": "u"})
    assert isinstance(SqlSettings(url=SecretStr("sqlite://")).url, SecretStr)


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    names = set(SqlSettings.model_fields) | {
        field.alias or name for name, field in MappingSettings.model_fields.items()}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert missing == []


def test_unknown_driver_is_a_config_error_without_the_password() -> None:
    settings = settings_from_mapping(
        {"plugins": {"sql": {"url": "nosuchdriver://u:S3CRET@h/x"}}}, environ={})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("sql", zengine_sql)])
    with pytest.raises(ConfigError) as info:
        runtime.start()
    assert "nosuchdriver" in str(info.value) and "S3CRET" not in str(info.value)
