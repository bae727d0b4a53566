"""Turn resolved catalogue values into document elements. Shared by the builders."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from zengine.catalog import CodecSetting, Field, ZrtpSetting
from zengine.models import Element

Formatter = Callable[[Field, Any], str]


def mobile_text(field: Field, value: Any) -> str:
    """Seed style: booleans ``true``/``false``, enums as the seed writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def leaf(tag: str, text: str | None) -> Element:
    return Element(tag, text)


def fields_to_elements(
    fields: Iterable[Field], values: Mapping[str, Any], fmt: Formatter,
    special: Mapping[str, Callable[[Any], Element | None]] | None = None,
) -> list[Element]:
    """Elements in catalogue order; ``a/b`` paths nest under a section created on first use.

    Fields without a value are omitted, and so is a section left empty.
    """
    out: list[Element] = []
    sections: dict[str, Element] = {}
    for field in fields:
        value = values.get(field.path)
        if value is None:
            continue
        if special and field.path in special:
            element = special[field.path](value)
            if element is not None:
                out.append(element)
            continue
        section, _, name = field.path.rpartition("/")
        node = leaf(name, fmt(field, value))
        if section:
            parent = sections.get(section)
            if parent is None:
                parent = sections[section] = Element(section)
                out.append(parent)
            parent.children.append(node)
        else:
            out.append(node)
    return out


def codecs_element(codecs: tuple[CodecSetting, ...], *, flag: Callable[[bool], str]) -> Element:
    root = Element("codecs")
    for setting in codecs:
        codec = Element("codec", children=[
            leaf("codec_id", str(setting.codec.id)),
            leaf("priority", str(setting.priority)),
            leaf("enabled", "true" if setting.enabled else "false"),
        ])
        # Only what the operator set: an absent value keeps Zoiper's per-codec default.
        if setting.bps is not None:
            codec.children.append(leaf("bps", str(setting.bps)))
        if setting.dtx is not None:
            codec.children.append(leaf("dtx", flag(setting.dtx)))
        if setting.vbr is not None:
            codec.children.append(leaf("vbr", flag(setting.vbr)))
        root.children.append(codec)
    return root


def zrtp_element(zrtp: ZrtpSetting, item_tags: Mapping[str, str]) -> Element:
    root = Element("zrtp", children=[leaf("enabled", "true" if zrtp.enabled else "false")])
    for section, items in zrtp.lists:
        parent = Element(section)
        for item in items:
            parent.children.append(Element(item_tags[section], children=[
                leaf("name", item.name),
                leaf("id", str(item.id)),
                leaf("priority", str(item.priority)),
                leaf("selected", "true" if item.selected else "false"),
            ]))
        root.children.append(parent)
    return root
