"""The document a user's phone gets, passwords and tokens masked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from zengine.errors import BackendUnavailable, BadVersion, LoginFailed, ZengineError
from zengine_admin.models import PreviewView
from zengine_admin.problems import Invalid, NotFound, Problem, Unavailable
from zengine_admin.service.base import MASK, Actor, find_identity, scoped

if TYPE_CHECKING:
    from zengine.runtime import Runtime


def _mask(document: bytes) -> str:
    """Every password and token element's text replaced: the help desk sees the document's
    shape and settings, never a credential."""
    root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False,
                                                            no_network=True))
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if ("password" in tag or tag in ("token", "ha1")) and element.text:
            element.text = MASK
    return etree.tostring(root, encoding="unicode")


@scoped
def preview(runtime: Runtime, actor: Actor, username: str, *, family: str | None = None,
            version: str | None = None) -> PreviewView:
    """The document ``username``'s client of ``family``/``version`` gets (``zengine render``),
    passwords and tokens masked."""
    actor.require("read")
    from zengine.render import render_document

    identity = find_identity(runtime, username)
    if identity is None or not actor.sees(identity.tenant):
        raise NotFound(f"no user {username!r}")
    try:
        body = render_document(runtime, username, version=version, family=family)
    except BadVersion as exc:
        raise Invalid("version", exc.public_message) from None
    except LoginFailed:
        raise NotFound(f"no user {username!r}") from None
    except BackendUnavailable as exc:
        raise Unavailable(exc.public_message) from None
    except ZengineError as exc:
        raise Problem(exc.public_message) from None
    if body.lstrip().startswith(b"<?xml") or body.lstrip().startswith(b"<"):
        text = _mask(body)
    else:
        text = MASK
    return PreviewView(username=username, family=family or "auto", version=version,
                       content_type="application/xml", document=text)
