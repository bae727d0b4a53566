"""``[plugins.portal]``: off by default, validated, documented; the session key's sources."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.testclient import TestClient

import zengine_portal
from tests.conftest import EXAMPLE_CONFIG, ROOT
from zengine.app import create_app
from zengine.errors import ConfigError
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_portal import session_key
from zengine_portal.assets import theme_css
from zengine_portal.settings import PortalSettings

BUILTINS = ("zoiper", "static", "urls", "audit")


def _settings(portal: dict[str, Any], **top: Any) -> Any:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["plugins"]["portal"] = portal
    data.update(top)
    return settings_from_mapping(data, base_dir=EXAMPLE_CONFIG.parent, environ={})


def _app(portal: dict[str, Any], **top: Any) -> Any:
    return create_app(_settings(portal, **top), load_entrypoints=False,
                      plugins=[*plugin_list(*BUILTINS), ("portal", zengine_portal)])


def _runtime(portal: dict[str, Any], environ: dict[str, str] | None = None,
             workers: int = 1) -> Any:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["plugins"]["portal"] = portal
    data["server"]["workers"] = workers
    settings = settings_from_mapping(data, base_dir=EXAMPLE_CONFIG.parent, environ=environ or {})
    return build_runtime(settings, load_entrypoints=False,
                         plugins=[*plugin_list(*BUILTINS), ("portal", zengine_portal)])


def test_portal_is_off_by_default() -> None:
    with TestClient(_app({}), base_url="https://testserver") as client:
        response = client.get("/portal")
    assert response.status_code == 404
    assert b"<error" in response.content


def test_enabled_without_the_tokens_plugin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs the tokens plugin"):
        _app({"enabled": True, "session_key": "k" * 32})


@pytest.mark.parametrize(("table", "message"), [
    ({"accent_color": "red; background: url(x)"}, "key 'accent_color'.*hex colour"),
    ({"path": "/portal/"}, "key 'path'"),
    ({"path": "portal"}, "key 'path'"),
    ({"title": ""}, "key 'title'"),
    ({"language": "en<script>"}, "key 'language'"),
    ({"session_ttl": 5}, "key 'session_ttl'"),
    ({"colour": "#fff"}, "unknown key 'colour'"),
])
def test_bad_settings_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _runtime(table)


def test_short_session_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="at least 32 characters") as info:
        _runtime({"session_key": "tooshort-secret"})
    assert "tooshort-secret" not in str(info.value)


def test_session_key_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("f" * 40 + "\n", encoding="utf-8")
    runtime = _runtime({"session_key_file": str(tmp_path / "key")})
    assert session_key(runtime.config("portal", PortalSettings), runtime) == "f" * 40


def test_session_key_file_too_short_or_missing(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("short\n", encoding="utf-8")
    runtime = _runtime({"session_key_file": str(tmp_path / "key")})
    with pytest.raises(ConfigError, match="at least 32") as info:
        session_key(runtime.config("portal", PortalSettings), runtime)
    assert "short" not in str(info.value).replace("at least", "")
    runtime = _runtime({"session_key_file": str(tmp_path / "absent")})
    with pytest.raises(ConfigError, match="cannot read secret file"):
        session_key(runtime.config("portal", PortalSettings), runtime)


def test_key_and_key_file_together_are_refused(tmp_path: Path) -> None:
    runtime = _runtime({"session_key": "k" * 32, "session_key_file": str(tmp_path / "k")})
    with pytest.raises(ConfigError, match="not both"):
        session_key(runtime.config("portal", PortalSettings), runtime)


def test_generated_key_warns_without_logging_it() -> None:
    runtime = _runtime({})
    with structlog.testing.capture_logs() as logs:
        key = session_key(runtime.config("portal", PortalSettings), runtime)
    assert len(key) >= 32
    assert [entry["event"] for entry in logs] == ["portal.session_key_generated"]
    assert key not in repr(logs)
    # A new key each time: nothing is derived from the config.
    assert session_key(runtime.config("portal", PortalSettings), runtime) != key


def test_several_workers_need_a_key() -> None:
    runtime = _runtime({}, workers=2)
    with pytest.raises(ConfigError, match="workers > 1 set session_key"):
        session_key(runtime.config("portal", PortalSettings), runtime)


def test_session_key_from_the_environment_is_taken_verbatim() -> None:
    key = '"' + "7" * 40 + '"'
    runtime = _runtime({}, environ={"ZENGINE_PLUGINS__PORTAL__SESSION_KEY": key})
    assert session_key(runtime.config("portal", PortalSettings), runtime) == key


def test_theme_is_the_configured_colours() -> None:
    css = theme_css(PortalSettings(accent_color="#123456", text_color="#abc"))
    assert "--accent: #123456;" in css and "--text: #abc;" in css


def test_every_portal_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = doc.split("### `[plugins.portal]`", 1)[1].split("\n## ", 1)[0]
    for key in PortalSettings.model_fields:
        assert f"| `{key}` |" in section, f"[plugins.portal] {key} is not documented"


def test_check_config_finds_portal_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from zengine.cli import main

    monkeypatch.setenv("ZENGINE_PLUGINS__TOKENS__SQLITE_PATH", str(tmp_path / "tokens.db"))
    monkeypatch.setenv("ZENGINE_PLUGINS__PORTAL__ENABLED", "true")
    monkeypatch.setenv("ZENGINE_PLUGINS__PORTAL__LOGO", str(tmp_path / "missing.png"))
    assert main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    assert "[plugins.portal] logo: cannot read" in capsys.readouterr().err
    monkeypatch.delenv("ZENGINE_PLUGINS__PORTAL__LOGO")
    key = tmp_path / "portal.key"
    key.write_text("k" * 40 + "\n", encoding="utf-8")
    key.chmod(0o644)
    monkeypatch.setenv("ZENGINE_PLUGINS__PORTAL__SESSION_KEY_FILE", str(key))
    assert main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 0
    out = capsys.readouterr()
    assert "OK" in out.out and "portal" in out.out
    assert "session_key_file" in out.out and "readable" in out.out
    assert "k" * 40 not in out.out + out.err
