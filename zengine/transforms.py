"""Apply per-version transform steps to a document, migration style (newest step first)."""

from __future__ import annotations

from collections.abc import Iterable

from zengine.models import Document, Transform, Version


def newest_version(steps: Iterable[Transform], family: str, base: Version) -> Version:
    return max((s.version for s in steps if s.family == family), default=base)


def apply_transforms(document: Document, steps: Iterable[Transform]) -> None:
    """Turn a family's newest document into the one ``document.client.version`` understands."""
    target = document.client.version
    wanted = sorted(
        (s for s in steps if s.family == document.client.family and s.version > target),
        key=lambda s: s.version,
        reverse=True,
    )
    for step in wanted:
        step.apply(document)
