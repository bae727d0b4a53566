"""The path-key mask also covers near misses a phone or an operator may send (no path after
the key, a doubled leading slash): they are 404s, and the access log must not hold the key."""

from __future__ import annotations

from typing import Any

import pytest

from zengine.tenancy import mask_scope, new_path_key


@pytest.mark.parametrize(("template", "masked"), [
    ("/t/{key}/id.php", "/t/~/id.php"),
    ("/t/{key}", "/t/~"),
    ("/t/{key}/", "/t/~/"),
    ("//t/{key}/id.php", "//t/~/id.php"),
    ("///t/{key}", "///t/~"),
])
def test_the_key_never_stays_in_the_scope(template: str, masked: str) -> None:
    key = new_path_key()
    scope: dict[str, Any] = {"path": template.format(key=key),
                             "raw_path": template.format(key=key).encode()}
    mask_scope(scope)
    assert scope["path"] == masked
    assert key.encode() not in scope["raw_path"]
    assert scope["zengine.path_key"] == key


@pytest.mark.parametrize("path", ["/t/", "/t", "/id.php", "/t/~/id.php", "/tt/x/id.php"])
def test_other_paths_are_left_alone(path: str) -> None:
    scope: dict[str, Any] = {"path": path, "raw_path": path.encode()}
    mask_scope(scope)
    assert scope["path"] == path and "zengine.path_key" not in scope
