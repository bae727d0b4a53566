"""Structural checks of legacy and desktop documents against their field tables.

The counterpart of ``zengine.testing.check_mobile`` for the other two families, with the same
signature, so a test registers them in ``zengine.testing.STRUCTURE_CHECKERS``. Each returns the
list of problems found; an empty list means every element is known for the family and version
and every value has the right type and an allowed value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from lxml import etree

from zengine import catalog, contacts
from zengine.models import Version
from zengine.testing import check_value
from zengine_zoiper import desktop, desktop_fields, legacy


def _exact(node: etree._Element, fields: Iterable[catalog.Field], where: str) -> list[str]:
    """``node`` has exactly ``fields`` as children, in order, with valid values."""
    expected = [f.name for f in fields]
    actual = [child.tag for child in node]
    if actual != expected:
        return [f"{where}: children {actual} != {expected}"]
    problems = []
    for field, child in zip(fields, node, strict=True):
        if len(child):
            problems.append(f"{where}/{child.tag}: unexpected children")
        problems.extend(check_value(field, child.text, f"{where}/{child.tag}"))
    return problems


def check_legacy(root: etree._Element, version: Version) -> list[str]:
    """The legacy 1.0 flat format: no ``prov_version``, flat accounts, options-level codecs."""
    if version != legacy.VERSION:
        return [f"legacy documents are version {legacy.VERSION}, not {version}"]
    if root.tag != "options":
        return [f"root is <{root.tag}>, not <options>"]
    tags = [child.tag for child in root]
    if tags not in (["accounts"], ["accounts", "codecs"]):
        return [f"options: children {tags}, expected accounts[, codecs]"]
    problems: list[str] = []
    accounts = root[0]
    if not len(accounts):
        problems.append("accounts: empty")
    for account in accounts:
        if account.tag != "account":
            problems.append(f"accounts: unexpected <{account.tag}>")
            continue
        problems.extend(_exact(account, legacy.ACCOUNT_FIELDS, "account"))
    names = {str(c.id): c.legacy_name or c.name for c in catalog.CODECS}
    for codec in root[1] if len(tags) == 2 else ():
        if codec.tag != "codec":
            problems.append(f"codecs: unexpected <{codec.tag}>")
            continue
        problems.extend(_exact(codec, legacy.CODEC_FIELDS, "codec"))
        found = {child.tag: child.text or "" for child in codec}
        if names.get(found.get("codec_id", "")) != found.get("name"):
            problems.append(f"codec: id/name {found.get('codec_id')}/{found.get('name')} "
                            "do not match the catalogue")
    return problems


def _desktop_codecs(node: etree._Element, where: str) -> list[str]:
    problems = []
    for codec in node:
        if codec.tag != "codec":
            problems.append(f"{where}: unexpected <{codec.tag}>")
            continue
        for child in codec:
            text = child.text or ""
            tag = f"{where}/codec/{child.tag}"
            if child.tag == "codec_id":
                if not text.lstrip("-").isdigit() or int(text) not in desktop_fields.CODEC_IDS:
                    problems.append(f"{tag}: unknown codec {text!r}")
            elif child.tag in ("priority", "bps"):
                if not text.isdigit():
                    problems.append(f"{tag}: {text!r} is not a number")
            elif child.tag in ("enabled", "dtx", "vbr"):
                if text not in ("true", "false"):
                    problems.append(f"{tag}: {text!r} is not true/false")
            else:
                problems.append(f"{tag}: unknown codec field")
    return problems


def _desktop_zrtp(node: etree._Element, where: str) -> list[str]:
    problems = []
    for section in node:
        if section.tag == "enabled":
            if section.text not in ("true", "false"):
                problems.append(f"{where}/enabled: {section.text!r}")
            continue
        item_tag = desktop_fields.ZRTP_ITEMS.get(section.tag)
        if item_tag is None:
            problems.append(f"{where}: unknown <{section.tag}>")
            continue
        ids = {name: str(i) for name, i in desktop_fields.ZRTP_IDS[section.tag].items()}
        for item in section:
            if item.tag != item_tag:
                problems.append(f"{where}/{section.tag}: <{item.tag}> should be <{item_tag}>")
            fields = {child.tag: child.text or "" for child in item}
            if sorted(fields) != ["id", "name", "priority", "selected"]:
                problems.append(f"{where}/{section.tag}: item fields {sorted(fields)}")
            if ids.get(fields.get("name", "")) != fields.get("id"):
                problems.append(f"{where}/{section.tag}: name/id {fields} not in {ids}")
            if fields.get("selected") not in ("true", "false"):
                problems.append(f"{where}/{section.tag}: selected {fields.get('selected')!r}")
    return problems


def _desktop_contacts(node: etree._Element) -> list[str]:
    """``contact_services``: documented options of the ldap and xml types, in order."""
    problems = []
    idents = []
    for service in node:
        where = f"contact_services/{service.tag}"
        if service.tag != "contact_service":
            problems.append(f"contact_services: unexpected <{service.tag}>")
            continue
        kind = service.findtext("type") or ""
        if kind not in contacts.BY_TYPE:
            problems.append(f"{where}: type {kind!r} not in {tuple(contacts.BY_TYPE)}")
            continue
        fields = {f.name: f for f in contacts.fields_for(kind)}
        order = list(fields)
        order.insert(order.index("root") + 1 if "root" in order else len(order),
                     "attribute_mappings")
        tags = [child.tag for child in service]
        if [t for t in order if t in tags] != [t for t in tags if t in order]:
            problems.append(f"{where}: options out of documented order: {tags}")
        for child in service:
            if child.tag == "attribute_mappings" and kind == "ldap":
                problems.extend(_attribute_mappings(child, f"{where}/attribute_mappings"))
                continue
            field = fields.get(child.tag)
            if field is None or len(child):
                problems.append(f"{where}/{child.tag}: not a {kind} contact service option")
                continue
            text = child.text or ""
            if field.kind == "bool" and text not in ("true", "false"):
                problems.append(f"{where}/{child.tag}: {text!r} is not true/false")
            elif field.kind == "uint" and not (text.isascii() and text.isdigit()):
                problems.append(f"{where}/{child.tag}: {text!r} is not a number")
            elif field.kind == "enum" and text not in field.values:
                problems.append(f"{where}/{child.tag}: {text!r} not in {field.values}")
        for name, field in fields.items():
            if field.required and not service.findtext(name):
                problems.append(f"{where}: required <{name}> missing")
        ident = service.findtext("ident")
        if ident in idents or ident == contacts.LOCAL_IDENT:
            problems.append(f"{where}: ident {ident!r} repeated or reserved")
        idents.append(ident)
    return problems


def _attribute_mappings(node: etree._Element, where: str) -> list[str]:
    problems = []
    for mapping in node:
        tags = [child.tag for child in mapping]
        if mapping.tag != "attribute_mapping" or tags != ["property_type", "attribute_name",
                                                          "enabled"]:
            problems.append(f"{where}: <{mapping.tag}> with {tags}")
            continue
        if mapping.findtext("property_type") not in contacts.PROPERTY_TYPES:
            problems.append(f"{where}: unknown property {mapping.findtext('property_type')!r}")
        if mapping.findtext("enabled") not in ("true", "false"):
            problems.append(f"{where}: enabled {mapping.findtext('enabled')!r}")
    return problems


def _by_element(fields: Iterable[catalog.Field]) -> dict[str, catalog.Field]:
    return {f.path: f for f in fields}


def _check_children(node: etree._Element, known: Mapping[str, catalog.Field], prefix: str,
                    special: Mapping[str, Callable[[etree._Element, str], list[str]]]
                    ) -> list[str]:
    problems: list[str] = []
    for child in node:
        where = f"{prefix}/{child.tag}"
        if child.tag in special:
            problems.extend(special[child.tag](child, where))
            continue
        if len(child):
            for grandchild in child:
                field = known.get(f"{child.tag}/{grandchild.tag}")
                sub = f"{where}/{grandchild.tag}"
                if field is None:
                    problems.append(f"{sub}: not a desktop field")
                else:
                    problems.extend(check_value(field, grandchild.text, sub))
            continue
        field = known.get(child.tag)
        if field is None:
            problems.append(f"{where}: not a desktop field")
        else:
            problems.extend(check_value(field, child.text, where))
    return problems


def check_desktop(root: etree._Element, version: Version) -> list[str]:
    """The Zoiper5 desktop format: desktop fields and spellings only, no ``prov_version``."""
    if version != desktop.VERSION:
        return [f"desktop documents are labelled {desktop.VERSION}, not {version}"]
    if root.tag != "options":
        return [f"root is <{root.tag}>, not <options>"]
    problems: list[str] = []
    accounts_fields = _by_element(desktop_fields.account_fields())
    options_known = _by_element(desktop_fields.options_fields())
    special = {"codecs": _desktop_codecs, "zrtp": _desktop_zrtp}
    for node in root:
        if node.tag == "accounts":
            for account in node:
                if account.tag != "account":
                    problems.append(f"accounts: unexpected <{account.tag}>")
                    continue
                problems.extend(_check_children(account, accounts_fields, "account", special))
        elif node.tag == "contact_services":
            problems.extend(_desktop_contacts(node))
        else:
            wrapper = etree.Element("options")
            wrapper.append(etree.fromstring(etree.tostring(node)))
            problems.extend(_check_children(wrapper, options_known, "options", {}))
    return problems


CHECKERS: dict[str, Callable[[etree._Element, Version], list[str]]] = {
    legacy.FAMILY: check_legacy,
    desktop.FAMILY: check_desktop,
}
