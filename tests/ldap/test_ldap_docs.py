"""docs/backends/ldap.md documents every option, and its TOML examples are valid configs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import zengine_ldap
from tests.conftest import ROOT
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine_ldap.settings import AttributeMap, GroupProfile, LdapSettings

DOC = ROOT / "docs" / "backends" / "ldap.md"
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_every_option_is_in_the_reference_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    options = text[text.index("## Options"):text.index("## Accounts")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", options, re.MULTILINE))
    expected = set(LdapSettings.model_fields) | set(AttributeMap.model_fields)
    assert expected - documented == set(), "undocumented options"
    assert documented - expected == set(), "documented options that do not exist"
    for key in GroupProfile.model_fields:
        assert f"{key} = " in options


def test_every_contact_service_option_is_documented() -> None:
    from zengine_ldap.contacts import LdapContactService

    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## The directory as a Zoiper5 contact service"):]
    section = section[:section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `([a-z_]+)`", section, re.MULTILINE))
    assert set(LdapContactService.model_fields) == documented


def test_there_are_worked_openldap_and_ad_examples() -> None:
    presets = [tomllib.loads(block)["plugins"]["ldap"].get("preset", "openldap")
               for block in TOML_BLOCKS]
    assert presets == ["openldap", "active_directory"]


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=["openldap", "active_directory"])
def test_examples_validate(block: str, tmp_path: Path) -> None:
    data = tomllib.loads(block)
    settings = settings_from_mapping(data, environ={}, base_dir=tmp_path)
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("ldap", zengine_ldap)])
    config = runtime.config("ldap", LdapSettings)
    assert config.enabled
    assert {rule.profile for rule in config.group_profiles} <= set(settings.profiles)
