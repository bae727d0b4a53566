"""Serialise documents with lxml: every value is escaped exactly once, by lxml."""

from __future__ import annotations

import threading

from lxml import etree

from zengine.errors import AccountDataError
from zengine.models import Element
from zengine.values import xml_invalid_char, xml_safe_text

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
#: Document shapes kept per thread: a deployment serves a few (family, version, accounts),
#: and each kept one is a small tree (~30 KB for alice's), in every provisioning thread.
_SHAPES_PER_THREAD = 8


def _build(node: Element, parent: etree._Element | None) -> etree._Element:
    element = etree.Element(node.tag) if parent is None else etree.SubElement(parent, node.tag)
    if node.text is not None:
        element.text = node.text
    for child in node.children:
        _build(child, element)
    return element


#: What a document's shape is: every element's tag, in document order, with a parent's
#: child count and whether a leaf has a text (a leaf's text itself is not in it).
Shape = tuple[object, ...]


class _MixedContent(Exception):
    """A parent with a text of its own (no built-in document has one): its text would be
    part of the kept tree and of the shape's key, and a plugin could put a secret there."""


def _shape(root: Element) -> tuple[Shape, list[str]]:
    """``root``'s shape and its leaves' texts (each leaf that has one, in document order);
    raises :class:`_MixedContent` for a parent with a text."""
    shape: list[object] = []
    texts: list[str] = []
    add, add_text = shape.append, texts.append

    def walk(node: Element) -> None:
        children = node.children
        if children:
            if node.text is not None:
                raise _MixedContent
            add((node.tag, len(children)))
            for child in children:
                walk(child)
        elif node.text is None:
            add((node.tag, None))
        else:
            add(node.tag)
            add_text(node.text)

    walk(root)
    return tuple(shape), texts


class _Template:
    """One shape's tree, built and indented once (as ``_build`` + ``etree.indent`` would, its
    leaves' texts left out): a document of that shape is its leaves' texts set, serialised,
    and set back to "" (no password stays in the cache). ``etree.indent`` sets the text of
    parents and the tails of children only, so setting a leaf's text before or after it is
    the same tree (tests/test_xmlio.py compares both on random trees)."""

    __slots__ = ("leaves", "tree")

    def __init__(self, root: Element) -> None:
        self.leaves: list[etree._Element] = []
        self.tree = self._build(root, None)
        etree.indent(self.tree, space="  ")

    def _build(self, node: Element, parent: etree._Element | None) -> etree._Element:
        element = etree.Element(node.tag) if parent is None \
            else etree.SubElement(parent, node.tag)
        if node.children:
            for child in node.children:
                self._build(child, element)
        elif node.text is not None:
            self.leaves.append(element)
        return element


class _Shapes(threading.local):
    """Per thread: a template is changed while it serialises, so no two threads share one
    (and each thread's lxml trees stay in that thread, as ``_build``'s always did)."""

    def __init__(self) -> None:
        self.templates: dict[Shape, _Template] = {}


_SHAPES = _Shapes()


def _pretty(root: Element) -> bytes:
    """What ``_build`` + ``etree.indent`` + ``etree.tostring`` give, without building the tree
    each time: creating an lxml element (its Python proxy above all) is most of that cost."""
    try:
        shape, texts = _shape(root)
    except _MixedContent:
        tree = _build(root, None)  # built for this document alone, as before the templates
        etree.indent(tree, space="  ")
        return etree.tostring(tree, encoding="utf-8", xml_declaration=False)
    templates = _SHAPES.templates
    template = templates.get(shape)
    if template is None:
        if len(templates) >= _SHAPES_PER_THREAD:
            del templates[next(iter(templates))]  # the oldest: bounded, and seldom needed
        template = _Template(root)
        templates[shape] = template
    leaves = template.leaves
    try:
        for element, text in zip(leaves, texts, strict=True):
            element.text = text
        return etree.tostring(template.tree, encoding="utf-8", xml_declaration=False)
    finally:
        for element in leaves:
            element.text = ""


def serialize(root: Element, *, pretty: bool = True) -> bytes:
    """UTF-8 document with declaration. A value XML cannot carry is refused, never emitted."""
    try:
        if pretty:
            return _DECLARATION + _pretty(root) + b"\n"
        tree = _build(root, None)
    except ValueError as exc:
        bad = next((n for n in root.iter() if n.text and xml_invalid_char(n.text)), None)
        where = f" in <{bad.tag}>" if bad is not None else ""
        raise AccountDataError(f"value not representable in XML{where}: {exc}") from None
    return _DECLARATION + etree.tostring(tree, encoding="utf-8", xml_declaration=False) + b"\n"


def error_document(message: str, code: int = 1) -> bytes:
    """Zoiper's documented error: ``<error code="1">message</error>``.

    Never fails: an error document must always be sendable, whatever the message holds.
    """
    element = etree.Element("error", code=str(code))
    element.text = xml_safe_text(message)
    return _DECLARATION + etree.tostring(element, encoding="utf-8", xml_declaration=False) + b"\n"
