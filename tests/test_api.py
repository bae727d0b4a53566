"""The public API surface: what ``zengine.api`` exports is what docs/plugins.md lists, and the
deprecation mechanism the policy relies on works with zengine's plugin manager."""

from __future__ import annotations

import re

import pluggy
import pytest

from tests.conftest import ROOT
from zengine import api
from zengine.plugins import create_plugin_manager

DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
SECTION = DOCS.split("## Public API and deprecation policy", 1)[1].split("\n## ", 1)[0]
TABLE = "\n".join(line for line in SECTION.splitlines() if line.startswith("| `"))


def test_every_exported_name_exists_and_is_documented() -> None:
    assert len(api.__all__) == len(set(api.__all__))
    for name in api.__all__:
        assert hasattr(api, name), f"zengine.api.__all__ names {name!r}, which it lacks"
        assert f"`{name}`" in TABLE, f"zengine.api.{name} is not in docs/plugins.md's table"


def test_every_documented_name_is_exported() -> None:
    documented = set(re.findall(r"`(\w+)`", TABLE))
    assert documented - set(api.__all__) == set()


def test_api_names_are_the_core_objects_not_copies() -> None:
    from zengine import errors, models

    assert api.Account is models.Account
    assert api.BackendUnavailable is errors.BackendUnavailable
    assert issubclass(api.ZengineDeprecationWarning, DeprecationWarning)


def test_retired_hook_warns_every_plugin_that_implements_it() -> None:
    """The policy's mechanism: pluggy's ``warn_on_impl`` with ZengineDeprecationWarning."""
    hookspec = pluggy.HookspecMarker("zengine")

    class RetiredSpecs:
        @hookspec(warn_on_impl=api.ZengineDeprecationWarning(
            "zengine_old_thing is deprecated since 0.1: implement zengine_new_thing"))
        def zengine_old_thing(self) -> None:
            """Retired."""

    class OldPlugin:
        @api.hookimpl
        def zengine_old_thing(self) -> None:
            return None

    pm = create_plugin_manager(load_entrypoints=False)
    pm.add_hookspecs(RetiredSpecs)
    with pytest.warns(api.ZengineDeprecationWarning, match="implement zengine_new_thing"):
        pm.register(OldPlugin(), name="old")
