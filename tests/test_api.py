"""The public API surface: what ``zengine.api`` exports is what docs/plugins.md lists, the
deprecation mechanism the policy relies on works with zengine's plugin manager, and the example
third-party plugin imports nothing from zengine outside the surface."""

from __future__ import annotations

import ast
import importlib
import re
from importlib.metadata import entry_points
from pathlib import Path

import pluggy
import pytest

from tests.conftest import ROOT, service_missing
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


EXAMPLE = ROOT / "examples" / "zengine-example-billing"
#: What a third-party plugin may import from zengine: the API, and in tests the test kit.
SURFACE = {"zengine.api": set(api.__all__), "zengine.testing": None, "zengine.testkit": None}


def _zengine_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import of zengine or one of its built-in plugins."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return [(line, module, names) for line, module, names in found
            if (module == "zengine" or module.startswith(("zengine.", "zengine_")))
            and not module.startswith("zengine_example_billing")]


def test_example_plugin_imports_nothing_outside_the_public_api() -> None:
    files = sorted(EXAMPLE.rglob("*.py"))
    assert len(files) >= 4, files
    seen = set()
    for path in files:
        where = path.relative_to(ROOT)
        in_tests = "tests" in path.relative_to(EXAMPLE).parts
        for line, module, names in _zengine_imports(path):
            seen.add(module)
            assert module in SURFACE, f"{where}:{line} imports {module}, outside the public API"
            assert in_tests or module == "zengine.api", (
                f"{where}:{line}: the plugin itself may only import zengine.api")
            allowed = SURFACE[module]
            if allowed is not None:
                assert set(names) <= allowed, f"{where}:{line}: {set(names) - allowed}"
            else:
                target = importlib.import_module(module)
                assert all(hasattr(target, name) for name in names), f"{where}:{line}"
    assert "zengine.api" in seen


def test_surface_check_catches_an_internal_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from zengine.pipeline import handle\nimport zengine_urls\n"
                   "from zengine_example_billing import signing\n")
    assert [m for _, m, _ in _zengine_imports(bad)] == ["zengine.pipeline", "zengine_urls"]


def test_example_plugin_is_installed_through_its_entry_point() -> None:
    """nox's tests session (and so CI) installs the example next to zengine."""
    found = list(entry_points(group="zengine", name="example_billing"))
    if not found:
        service_missing("zengine-example-billing is not installed: "
                        "pip install -e examples/zengine-example-billing")
    assert found[0].value == "zengine_example_billing"
    assert found[0].dist is not None and found[0].dist.name == "zengine-example-billing"
