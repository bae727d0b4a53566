"""docs/backends/http.md documents every option, and its worked example is a valid config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel

import zengine_http
from tests.conftest import ROOT
from zengine.api import build_runtime, settings_from_mapping
from zengine_http.settings import (
    AccountsSettings,
    HttpSettings,
    IdentityMap,
    LoginSettings,
    LookupSettings,
)

DOC = (ROOT / "docs" / "backends" / "http.md").read_text(encoding="utf-8")


def _keys(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_every_option_is_in_the_reference_tables() -> None:
    options = DOC[DOC.index("## Options"):DOC.index("## Choices")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", options, re.MULTILINE))
    expected = (_keys(HttpSettings) | _keys(LoginSettings) | _keys(LookupSettings)
                | _keys(AccountsSettings) | _keys(IdentityMap))
    assert expected - documented == set(), "undocumented options"
    assert documented - expected == set(), "documented options that do not exist"


def test_worked_example_validates(tmp_path: Path) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", DOC, re.DOTALL)
    settings = settings_from_mapping(tomllib.loads(block), environ={}, base_dir=tmp_path)
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("http", zengine_http)])
    config = runtime.config("http", HttpSettings)
    assert config.enabled and config.login is not None and config.accounts is not None
    assert config.identity.attributes == {"customer_id": "customer.id"}


def test_worked_example_is_what_the_tests_run() -> None:
    from tests.http.conftest import http_table

    (block,) = re.findall(r"```toml\n(.*?)```", DOC, re.DOTALL)
    documented = tomllib.loads(block)["plugins"]["http"]
    tested = http_table("https://crm.example.net", Path("/etc/zengine/crm-ca.pem"))
    for key in ("login", "identity"):
        for name, value in documented[key].items():
            if name != "method":  # the tests leave the login's default POST implicit
                assert tested[key][name] == value, f"{key}.{name}"
    assert documented["accounts"]["fields"] == tested["accounts"]["fields"]
    assert documented["accounts"]["url"] == tested["accounts"]["url"]
