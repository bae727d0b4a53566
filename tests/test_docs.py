"""The configuration reference covers every settings key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.conftest import ROOT
from zengine import settings as s
from zengine.doccache import DocumentCacheSettings
from zengine.logincache import LoginCacheSettings
from zengine.passwords import PasswordSettings

DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
MODELS: list[type[BaseModel]] = [
    s.ServerSettings, s.RequestSettings, s.ClientSettings, s.ErrorStatusSettings,
    s.LoggingSettings, s.AuthSettings, PasswordSettings, LoginCacheSettings,
    DocumentCacheSettings]


def _plugin_models() -> list[type[BaseModel]]:
    from zengine.tenantconfig import TenantKeys, TenantsSettings
    from zengine_admin.settings import AdminSettings
    from zengine_audit.settings import AuditSettings
    from zengine_console.settings import ConsoleSettings
    from zengine_guard.settings import GuardSettings
    from zengine_metrics.settings import MetricsSettings

    return [GuardSettings, TenantsSettings, TenantKeys, AuditSettings, AdminSettings,
            ConsoleSettings, MetricsSettings]


@pytest.mark.parametrize("model", MODELS + _plugin_models(), ids=lambda m: m.__name__)
def test_every_settings_key_documented(model: type[BaseModel]) -> None:
    for key in model.model_fields:
        assert f"| `{key}` |" in DOC, f"{model.__name__}.{key} missing from docs/configuration.md"


def test_example_config_keys_are_documented() -> None:
    import tomllib

    example = tomllib.loads((ROOT / "config" / "zengine.example.toml").read_text())
    for table in ("server", "request", "clients", "logging", "auth", "passwords"):
        for key in example[table]:
            assert f"| `{key}` |" in DOC


def test_plugin_docs_example_runs() -> None:
    """The plugin and its test in docs/plugins.md work as written."""
    import types

    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    plugin_code = text.split("# acme_zengine/__init__.py\n", 1)[1].split("```", 1)[0]
    test_code = text.split("## Testing a plugin", 1)[1].split("```python\n", 1)[1]
    test_code = test_code.split("```", 1)[0]
    module = types.ModuleType("acme_zengine")
    # The two helpers the example leaves to the reader.
    module.__dict__.update(check=lambda _user, password: password == "pw",
                           sip_password_of=lambda _user: "sip-secret")
    exec(compile(plugin_code, "docs/plugins.md", "exec"), module.__dict__)  # noqa: S102
    exec(compile(test_code, "docs/plugins.md", "exec"),  # noqa: S102
         {"acme_zengine": module})


# Not http.md: its `profile = "plan"` keys are JSON paths into the backend's answer.
@pytest.mark.parametrize("doc", [ROOT / "docs" / "backends" / name for name in
                                 ("sql.md", "ldap.md")], ids=lambda p: p.name)
def test_backend_docs_define_every_profile_their_examples_name(doc: object) -> None:
    """A profile an example names (`profile = "basic"`, `--profile basic`, a CSV's profile
    column) is one the same page defines: zengine refuses unknown profiles."""
    import re
    from pathlib import Path

    assert isinstance(doc, Path)
    text = doc.read_text(encoding="utf-8")
    defined = set(re.findall(r"^\[profiles\.([A-Za-z0-9_-]+)\]", text, re.MULTILINE))
    named = set(re.findall(r'^\s*(?:account_)?profile = "([^"]+)"', text, re.MULTILINE))
    named |= set(re.findall(r"--profile ([A-Za-z0-9_-]+)", text))
    for block in re.findall(r"```csv\n(.*?)```", text, re.DOTALL):
        rows = [line.split(",") for line in block.strip().splitlines()]
        if "profile" in rows[0]:
            column = rows[0].index("profile")
            named |= {row[column] for row in rows[1:] if len(row) > column and row[column]}
    assert named <= defined, f"{doc.name}: profiles used but never defined: {named - defined}"
