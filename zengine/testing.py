"""Helpers for plugin authors' tests: apps without entry points, and structural checks of
documents against the field catalogue."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    """Built-in plugins by entry-point name, for ``create_app(..., load_entrypoints=False)``."""
    import importlib

    return [(name, importlib.import_module(f"zengine_{name}")) for name in names]
