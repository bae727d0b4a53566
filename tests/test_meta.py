"""Datasette-style meta-tests: every hook is documented, with its exact signature, and tested."""

from __future__ import annotations

import inspect
import re

import pytest

from tests.conftest import ROOT
from zengine import hookspecs

HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("zengine_"))
DOCS = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")


def signature(name: str) -> str:
    """``zengine_x(a: A, b: B) -> R``, annotations as written (they are strings)."""
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 12


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_docstring_with_versionadded(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 80
    assert "versionadded" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_exact_signature(hook: str) -> None:
    assert f"### `{hook}`" in DOCS, f"docs/plugins.md has no section for {hook}"
    assert signature(hook) in DOCS, f"docs/plugins.md lacks the signature {signature(hook)}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(rf"def test_\w*{hook}\w*\(")
    files = [p for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_meta.py"]
    assert any(pattern.search(p.read_text(encoding="utf-8")) for p in files), (
        f"no test function named after {hook}")


def test_documented_hooks_exist() -> None:
    documented = set(re.findall(r"### `(zengine_\w+)`", DOCS))
    assert documented == set(HOOKS)


#: TEAM standard: "keep zengine/ small; no module over ~400 lines".
MAX_CORE_MODULE_LINES = 400


def test_core_modules_stay_small() -> None:
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines())
             for path in sorted((ROOT / "zengine").glob("*.py"))}
    assert sizes, "no core modules found"
    too_big = {name: n for name, n in sizes.items() if n > MAX_CORE_MODULE_LINES}
    assert not too_big, f"split these modules (over {MAX_CORE_MODULE_LINES} lines): {too_big}"
