"""zengine.xmlio.serialize: byte for byte what building the whole lxml tree for every document
gave (the implementation before templates, kept here as the reference), on random trees."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from zengine import xmlio
from zengine.errors import AccountDataError
from zengine.models import Element
from zengine.values import xml_invalid_char
from zengine.xmlio import serialize


def reference(root: Element, *, pretty: bool = True) -> bytes:
    """zengine.xmlio.serialize as it was: the tree built, indented and written each time."""
    def build(node: Element, parent: etree._Element | None) -> etree._Element:
        element = etree.Element(node.tag) if parent is None \
            else etree.SubElement(parent, node.tag)
        if node.text is not None:
            element.text = node.text
        for child in node.children:
            build(child, element)
        return element

    try:
        tree = build(root, None)
    except ValueError as exc:
        bad = next((n for n in root.iter() if n.text and xml_invalid_char(n.text)), None)
        where = f" in <{bad.tag}>" if bad is not None else ""
        raise AccountDataError(f"value not representable in XML{where}: {exc}") from None
    if pretty:
        etree.indent(tree, space="  ")
    return xmlio._DECLARATION + etree.tostring(tree, encoding="utf-8",
                                               xml_declaration=False) + b"\n"


def outcome(function: object, root: Element) -> object:
    try:
        return function(root)  # type: ignore[operator]
    except AccountDataError as exc:
        return ("refused", str(exc))


tags = st.sampled_from(["a", "b", "account", "SIP_domain", "x-y", "n.1", "\u00e9l", "c"])
texts = st.one_of(
    st.none(), st.just(""), st.sampled_from([" ", "\n", "  \n\t", " x ", "&<>\"'", "]]>",
                                             "Tea&Cakes<3", "\U0001f600", "line\nbreak"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12))
trees = st.recursive(
    st.builds(lambda tag, text: Element(tag, text), tags, texts),
    lambda kids: st.builds(lambda tag, text, children: Element(tag, text, list(children)),
                           tags, texts, st.lists(kids, max_size=5)),
    max_leaves=30)


def retexted(node: Element, values: list[str | None]) -> Element:
    """The same shape (tags, children, which leaves have a text), the leaves' texts new."""
    if node.children:
        return Element(node.tag, node.text, [retexted(c, values) for c in node.children])
    if node.text is None:
        return Element(node.tag)
    return Element(node.tag, values.pop() if values else "")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees, st.lists(st.one_of(st.text(max_size=8), st.just("<&>")), max_size=30))
def test_random_trees_serialize_as_the_reference(root: Element,
                                                 other: list[str | None]) -> None:
    assert outcome(serialize, root) == outcome(reference, root)
    # The same shape again (its template reused) with other texts, then the first again.
    again = retexted(root, list(other))
    assert outcome(serialize, again) == outcome(reference, again)
    assert outcome(serialize, root) == outcome(reference, root)
    assert serialize(Element("z", "plain")) == reference(Element("z", "plain"))


def test_a_refused_value_leaves_the_template_usable() -> None:
    good = Element("a", children=[Element("b", "one"), Element("c", "two")])
    bad = Element("a", children=[Element("b", "one\x01"), Element("c", "two")])
    assert serialize(good) == reference(good)
    with pytest.raises(AccountDataError, match="in <b>"):
        serialize(bad)
    assert outcome(serialize, bad) == outcome(reference, bad)
    assert serialize(good) == reference(good)
    with pytest.raises(AccountDataError):
        serialize(Element("not a tag", "x"))


def test_no_leaf_text_stays_in_a_kept_template() -> None:
    serialize(Element("secret-doc", children=[Element("password", "hunter2")]))
    kept = b"".join(etree.tostring(t.tree) for t in xmlio._SHAPES.templates.values())
    assert b"hunter2" not in kept


def test_no_text_of_a_parent_stays_in_a_kept_template() -> None:
    """Review: a parent's own text was part of the kept tree (and of its shape's key)."""
    xmlio._SHAPES.templates.clear()
    root = Element("doc", "pw-secret", children=[Element("a", "x"), Element("b")])
    assert serialize(root) == reference(root)
    kept = b"".join(etree.tostring(t.tree) for t in xmlio._SHAPES.templates.values())
    assert b"pw-secret" not in kept and not any(
        "pw-secret" in repr(shape) for shape in xmlio._SHAPES.templates)


def test_more_shapes_than_kept_and_several_threads() -> None:
    shapes = [Element("r", children=[Element("k", str(i))] * (i + 1)) for i in range(20)]
    expected = [reference(s) for s in shapes]
    failures: list[int] = []

    def serve() -> None:
        for _ in range(5):
            for i, shape in enumerate(shapes):
                if serialize(shape) != expected[i]:
                    failures.append(i)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(xmlio._SHAPES.templates) <= xmlio._SHAPES_PER_THREAD


def test_not_pretty_is_unchanged() -> None:
    root = Element("a", children=[Element("b", "&"), Element("c")])
    assert serialize(root, pretty=False) == reference(root, pretty=False)
