"""Helpers for plugin authors' tests: apps without entry points, structural checks of
documents against the field catalogue, and golden files.

Part of the public API (docs/plugins.md): the pytest fixtures of :mod:`zengine.testkit` are
thin wrappers around these.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from zengine import catalog
from zengine.models import Version

#: family -> checker(root element, version) -> list of problems; families register here.
STRUCTURE_CHECKERS: dict[str, Callable[[etree._Element, Version], list[str]]] = {}


def check_value(field: catalog.Field, text: str | None, where: str) -> list[str]:
    """Problems with one element's text against its catalogue field (bool, uint, enum)."""
    value = text or ""
    if field.type == "bool" and value not in ("true", "false"):
        return [f"{where}: {value!r} is not true/false"]
    if field.type == "uint" and not (value.isascii() and value.isdigit()):
        return [f"{where}: {value!r} is not an unsigned integer"]
    if field.type == "enum" and value not in field.values:
        return [f"{where}: {value!r} not in {field.values}"]
    return []


def _mobile_codecs(node: etree._Element, where: str) -> list[str]:
    problems = []
    known_ids = {str(c.id) for c in catalog.CODECS}
    for codec in node:
        if codec.tag != "codec":
            problems.append(f"{where}: unexpected <{codec.tag}>")
            continue
        for child in codec:
            text = child.text or ""
            if child.tag == "codec_id" and text not in known_ids:
                problems.append(f"{where}/codec_id: unknown codec {text!r}")
            elif child.tag in ("priority", "bps") and not text.isdigit():
                problems.append(f"{where}/{child.tag}: {text!r} is not a number")
            elif child.tag == "enabled" and text not in ("true", "false"):
                problems.append(f"{where}/enabled: {text!r}")
            elif child.tag in ("dtx", "vbr") and text not in ("0", "1"):
                problems.append(f"{where}/{child.tag}: {text!r}")
            elif child.tag not in ("codec_id", "priority", "enabled", "bps", "dtx", "vbr"):
                problems.append(f"{where}: unknown codec field <{child.tag}>")
    return problems


def _mobile_zrtp(node: etree._Element, version: Version, where: str) -> list[str]:
    problems = []
    specs = {s.section: s for s in catalog.ZRTP_LISTS}
    for section in node:
        if section.tag == "enabled":
            if section.text not in ("true", "false"):
                problems.append(f"{where}/enabled: {section.text!r}")
            continue
        spec = specs.get(section.tag)
        if spec is None:
            problems.append(f"{where}: unknown <{section.tag}>")
            continue
        item_tag = spec.item
        for first, old in spec.old_item:
            if version < first:
                item_tag = old
        ids = {name: str(i) for name, i in spec.ids}
        for item in section:
            if item.tag != item_tag:
                problems.append(f"{where}/{section.tag}: <{item.tag}> should be <{item_tag}>")
            fields = {child.tag: child.text or "" for child in item}
            if ids.get(fields.get("name", "")) != fields.get("id"):
                problems.append(f"{where}/{section.tag}: name/id {fields} not in {ids}")
    return problems


def check_mobile(root: etree._Element, version: Version) -> list[str]:
    """Every element known to the mobile catalogue at ``version``; types and enums valid."""
    problems: list[str] = []
    if root.tag != "options":
        return [f"root is <{root.tag}>, not <options>"]
    account_by_name = {f.name_for(version) if "/" not in f.path else f.path: f
                       for f in catalog.ACCOUNT_FIELDS}
    for f in catalog.ACCOUNT_FIELDS:
        if "/" in f.path:
            section, _, _name = f.path.rpartition("/")
            account_by_name[f"{section}/{f.name_for(version)}"] = f
        # Older clients get both spellings of an undated rename.
        for first, old in f.both_names:
            if version < first:
                account_by_name[old] = f
    options_by_path = {f.path: f for f in catalog.OPTIONS_FIELDS}

    def too_new(field: catalog.Field, where: str) -> list[str]:
        if field.since is not None and version < field.since:
            return [f"{where}: since {field.since}, client is {version}"]
        return []

    for node in root:
        if node.tag == "prov_version":
            if node.text != str(version):
                problems.append(f"prov_version {node.text!r} != served {version}")
        elif node.tag == "accounts":
            for account in node:
                if account.tag != "account":
                    problems.append(f"accounts: unexpected <{account.tag}>")
                    continue
                for child in account:
                    problems.extend(_mobile_account_child(child, version, account_by_name,
                                                          too_new))
        else:
            children = list(node) or [node]
            for child in children:
                path = f"{node.tag}/{child.tag}" if len(node) else node.tag
                field = options_by_path.get(path)
                if field is None:
                    problems.append(f"options: unknown <{path}>")
                    continue
                problems.extend(too_new(field, path))
                problems.extend(check_value(field, child.text, path))
    return problems


def _mobile_account_child(child: etree._Element, version: Version,
                          by_name: Mapping[str, catalog.Field],
                          too_new: Callable[[catalog.Field, str], list[str]]) -> list[str]:
    where = f"account/{child.tag}"
    if child.tag == "codecs":
        return _mobile_codecs(child, where)
    if child.tag == "zrtp":
        return too_new(catalog.account_fields()["zrtp"], where) + _mobile_zrtp(
            child, version, where)
    if len(child):
        problems = []
        for grandchild in child:
            field = by_name.get(f"{child.tag}/{grandchild.tag}")
            sub = f"{where}/{grandchild.tag}"
            if field is None:
                problems.append(f"{sub}: not in the catalogue at {version}")
                continue
            problems.extend(too_new(field, sub))
            problems.extend(check_value(field, grandchild.text, sub))
        return problems
    field = by_name.get(child.tag)
    if field is None:
        return [f"{where}: not in the catalogue at {version}"]
    return too_new(field, where) + check_value(field, child.text, where)


STRUCTURE_CHECKERS["mobile"] = check_mobile


def check_structure(document: bytes, family: str, version: Version) -> list[str]:
    """Parse ``document`` and return every problem found (an empty list means valid)."""
    root = etree.fromstring(document)
    checker = STRUCTURE_CHECKERS.get(family)
    if checker is None:
        return [f"no structure checker for family {family!r}"]
    return checker(root, version)


def plugin_list(*names: str) -> Sequence[tuple[str, Any]]:
    """Plugins by entry-point name, for ``create_app(..., load_entrypoints=False)``.

    A name is looked up in the ``zengine`` entry-point group of every installed distribution
    (so a third-party plugin is named like a built-in one); a name no distribution declares
    falls back to the module ``zengine_<name>``, for a source tree that is not installed.
    """
    import importlib
    from importlib.metadata import entry_points

    declared = {ep.name: ep for ep in entry_points(group="zengine")}
    found: list[tuple[str, Any]] = []
    for name in names:
        ep = declared.get(name)
        found.append((name, ep.load() if ep is not None else
                      importlib.import_module(f"zengine_{name}")))
    return found


def resolve_plugins(plugins: Iterable[str | tuple[str, object]]) -> list[tuple[str, Any]]:
    """``["zoiper", ("acme", acme_module)]`` -> ``(name, plugin)`` pairs for ``create_app``."""
    resolved: list[tuple[str, Any]] = []
    for item in plugins:
        resolved.extend(plugin_list(item) if isinstance(item, str) else [item])
    return resolved


def assert_document(document: bytes, family: str, version: Version | str) -> None:
    """Fail with every structural problem of ``document`` (see :func:`check_structure`)."""
    wanted = Version.parse(version) if isinstance(version, str) else version
    try:
        problems = check_structure(document, family, wanted)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"not well-formed XML: {exc}\n{document[:500]!r}") from None
    if problems:
        raise AssertionError(f"{family} {wanted} document has {len(problems)} problem(s):\n  "
                             + "\n  ".join(problems))


class Golden:
    """Byte-exact comparison with files under ``directory``; ``update=True`` rewrites them.

    Review the diff of a rewritten golden file like code: it is the expected output.
    """

    def __init__(self, directory: Path, *, update: bool = False) -> None:
        self.directory = directory
        self.update = update

    def path(self, name: str) -> Path:
        path = (self.directory / name).resolve()
        if not path.is_relative_to(self.directory.resolve()):
            raise ValueError(f"golden name {name!r} leaves {self.directory}")
        return path

    def check(self, name: str, data: bytes | str) -> None:
        actual = data.encode("utf-8") if isinstance(data, str) else data
        path = self.path(name)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
            return
        if not path.exists():
            raise AssertionError(f"missing golden file {path}; run pytest with "
                                 "--zengine-update-golden (or ZENGINE_UPDATE_GOLDEN=1), then "
                                 "review it")
        expected = path.read_bytes()
        if expected != actual:
            diff = difflib.unified_diff(
                expected.decode("utf-8", "replace").splitlines(),
                actual.decode("utf-8", "replace").splitlines(),
                f"{name} (golden)", f"{name} (actual)", lineterm="")
            raise AssertionError(f"{path} differs:\n" + "\n".join(list(diff)[:200]))
