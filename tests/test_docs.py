"""The configuration reference covers every settings key."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from zengine import settings as s

DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
MODELS = [s.ServerSettings, s.RequestSettings, s.ClientSettings, s.ErrorStatusSettings,
          s.LoggingSettings, s.AuthSettings, s.PasswordSettings]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_settings_key_documented(model: type) -> None:
    for key in model.model_fields:  # type: ignore[attr-defined]
        assert f"| `{key}` |" in DOC, f"{model.__name__}.{key} missing from docs/configuration.md"


def test_example_config_keys_are_documented() -> None:
    import tomllib

    example = tomllib.loads((ROOT / "config" / "zengine.example.toml").read_text())
    for table in ("server", "request", "clients", "logging", "auth", "passwords"):
        for key in example[table]:
            assert f"| `{key}` |" in DOC
