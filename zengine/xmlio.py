"""Serialise documents with lxml: every value is escaped exactly once, by lxml."""

from __future__ import annotations

from lxml import etree

from zengine.errors import AccountDataError
from zengine.models import Element
from zengine.values import xml_invalid_char, xml_safe_text

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _build(node: Element, parent: etree._Element | None) -> etree._Element:
    element = etree.Element(node.tag) if parent is None else etree.SubElement(parent, node.tag)
    if node.text is not None:
        element.text = node.text
    for child in node.children:
        _build(child, element)
    return element


def serialize(root: Element, *, pretty: bool = True) -> bytes:
    """UTF-8 document with declaration. A value XML cannot carry is refused, never emitted."""
    try:
        tree = _build(root, None)
    except ValueError as exc:
        bad = next((n for n in root.iter() if n.text and xml_invalid_char(n.text)), None)
        where = f" in <{bad.tag}>" if bad is not None else ""
        raise AccountDataError(f"value not representable in XML{where}: {exc}") from None
    if pretty:
        etree.indent(tree, space="  ")
    return _DECLARATION + etree.tostring(tree, encoding="utf-8", xml_declaration=False) + b"\n"


def error_document(message: str, code: int = 1) -> bytes:
    """Zoiper's documented error: ``<error code="1">message</error>``.

    Never fails: an error document must always be sendable, whatever the message holds.
    """
    element = etree.Element("error", code=str(code))
    element.text = xml_safe_text(message)
    return _DECLARATION + etree.tostring(element, encoding="utf-8", xml_declaration=False) + b"\n"
