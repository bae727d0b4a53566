"""Transform steps for the mobile family, generated from the catalogue.

One step per ``prov_version`` that changed something. Each step turns a document of its version
into the previous version's, like a database migration run backwards: it drops the fields that
version introduced (``since``), restores the names older clients used (``old_names``) and the
ZRTP item element names (``old_item``), and adds the older spelling beside the current one
where no source says which an older client reads (``both_names``). The steps are derived from
``zengine.catalog`` rather than written by hand, so the catalogue and the transforms can never
disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from zengine import catalog
from zengine.models import Document, Element, Transform, Version
from zengine_zoiper import mobile

#: The oldest mobile version: 1.0 is the legacy family, and nothing in Zoiper's example
#: server is annotated below 1.5, so 1.1-1.4 share the document every step has been applied to.
OLDEST = Version(1, 1)


@dataclass(frozen=True)
class Removal:
    scope: str
    #: Element path at the step's version, relative to the account or to ``options``.
    path: str


@dataclass(frozen=True)
class Rename:
    scope: str
    path: str
    old_name: str


@dataclass(frozen=True)
class Copy:
    """The element at ``path`` is sent a second time, right after itself, as ``old_name``."""

    scope: str
    path: str
    old_name: str


@dataclass(frozen=True)
class ItemRename:
    """Every item of ``zrtp/<section>`` is renamed from ``item`` to ``old_item``."""

    section: str
    item: str
    old_item: str


@dataclass(frozen=True)
class StepPlan:
    version: Version
    removals: tuple[Removal, ...] = ()
    renames: tuple[Rename, ...] = ()
    item_renames: tuple[ItemRename, ...] = ()
    copies: tuple[Copy, ...] = ()

    def describe(self) -> str:
        parts = []
        if self.removals:
            parts.append("drop " + ", ".join(r.path for r in self.removals))
        renames = [f"{r.path} -> {r.old_name}" for r in self.renames]
        renames += [f"zrtp/{r.section}/{r.item} -> {r.old_item}" for r in self.item_renames]
        if renames:
            parts.append("rename " + ", ".join(renames))
        if self.copies:
            parts.append("also send " + ", ".join(f"{c.path} as {c.old_name}"
                                                  for c in self.copies))
        return f"mobile {self.version}: " + "; ".join(parts)


def element_path(field: catalog.Field, version: Version) -> str:
    """Where ``field`` sits in a document of ``version`` (its name at that version)."""
    section, _, _ = field.path.rpartition("/")
    name = field.name_for(version)
    return f"{section}/{name}" if section else name


def item_name(spec: catalog.ZrtpList, version: Version) -> str:
    """The ZRTP item element name of ``spec`` in a document of ``version``."""
    for first, old in spec.old_item:
        if version < first:
            return old
    return spec.item


def _fields() -> Iterator[catalog.Field]:
    yield from catalog.ACCOUNT_FIELDS
    yield from catalog.OPTIONS_FIELDS


def plans(fields: Iterable[catalog.Field] | None = None,
          zrtp_lists: Iterable[catalog.ZrtpList] | None = None) -> list[StepPlan]:
    """The steps the catalogue implies, oldest first."""
    all_fields = list(_fields() if fields is None else fields)
    lists = list(catalog.ZRTP_LISTS if zrtp_lists is None else zrtp_lists)
    versions: set[Version] = set()
    for field in all_fields:
        if field.since is not None:
            versions.add(field.since)
        versions.update(first for first, _ in (*field.old_names, *field.both_names))
    for spec in lists:
        versions.update(first for first, _ in spec.old_item)
    result = []
    for version in sorted(versions):
        removals = tuple(Removal(f.scope, element_path(f, version))
                         for f in all_fields if f.since == version)
        renames = tuple(Rename(f.scope, element_path(f, version), old)
                        for f in all_fields for first, old in f.old_names if first == version)
        items = tuple(ItemRename(spec.section, item_name(spec, version), old)
                      for spec in lists for first, old in spec.old_item if first == version)
        copies = tuple(Copy(f.scope, element_path(f, version), old)
                       for f in all_fields for first, old in f.both_names if first == version)
        result.append(StepPlan(version, removals, renames, items, copies))
    return result


def _accounts(root: Element) -> list[Element]:
    accounts = root.child("accounts")
    if accounts is None:
        return []
    return [node for node in accounts.children if node.tag == "account"]


def _remove(base: Element, path: str) -> None:
    base.remove(path)
    section, _, _ = path.rpartition("/")
    parent = base.find(section) if section else None
    if parent is not None and not parent.children:
        # A section whose every child is newer than the client goes too (diagnostics < 1.5).
        base.remove(section)


def _bases(root: Element, scope: str) -> list[Element]:
    return _accounts(root) if scope == "account" else [root]


def _copy(base: Element, path: str, old_name: str) -> None:
    section, _, _ = path.rpartition("/")
    parent = base.find(section) if section else base
    node = base.find(path)
    if parent is None or node is None:
        return
    parent.children.insert(parent.children.index(node) + 1, Element(old_name, node.text))


def apply_plan(plan: StepPlan, document: Document) -> None:
    root = document.root
    for copy in plan.copies:
        for base in _bases(root, copy.scope):
            _copy(base, copy.path, copy.old_name)
    for removal in plan.removals:
        for base in _bases(root, removal.scope):
            _remove(base, removal.path)
    for rename in plan.renames:
        for base in _bases(root, rename.scope):
            base.rename(rename.path, rename.old_name)
    for item in plan.item_renames:
        for account in _accounts(root):
            section = account.find(f"zrtp/{item.section}")
            for node in section.children if section is not None else ():
                if node.tag == item.item:
                    node.tag = item.old_item


def _step(plan: StepPlan) -> Transform:
    def apply(document: Document) -> None:
        apply_plan(plan, document)

    return Transform(family=mobile.FAMILY, version=plan.version, apply=apply,
                     description=plan.describe())


def steps() -> list[Transform]:
    """The mobile family's transform steps, for ``zengine_transforms``."""
    return [_step(plan) for plan in plans()]
