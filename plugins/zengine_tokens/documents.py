"""Tokens in provisioning documents: the default ``token_url``, and a freshly issued token for
each account whose ``token_url`` is this server's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from zengine.api import PREVIEW_PLACEHOLDER, previewing
from zengine.catalog import ACCOUNT_FIELDS
from zengine.models import Document, Element, Identity
from zengine_tokens.api import TokenService
from zengine_tokens.endpoint import redeeming
from zengine_tokens.settings import PLUGIN_NAME

if TYPE_CHECKING:
    from zengine.runtime import Runtime

#: Only the mobile family carries ``token`` and ``token_url`` (docs/clients.md).
FAMILIES = ("mobile",)
_ORDER = {f.path: n for n, f in enumerate(f for f in ACCOUNT_FIELDS if "/" not in f.path)}


def _put(account: Element, tag: str, text: str) -> None:
    """Set ``<tag>``, or add it where the catalogue orders it among the account's fields."""
    node = account.child(tag)
    if node is not None:
        node.text = text
        return
    rank = _ORDER[tag]
    at = next((i for i, child in enumerate(account.children)
               if _ORDER.get(child.tag, -1) > rank), len(account.children))
    account.children.insert(at, Element(tag, text))


def add_tokens(document: Document, identity: Identity, runtime: Runtime) -> None:
    service = runtime.state.get(PLUGIN_NAME)
    if document.client.family not in FAMILIES or not isinstance(service, TokenService):
        return
    ours = service.token_url
    for element, resolved in document.accounts:
        node = element.child("token_url")
        url = node.text if node is not None and node.text else None
        if url is None:
            if ours is None:
                continue
            _put(element, "token_url", ours)
            url = ours
        if (url != ours or not service.config.issue_in_documents or redeeming.get()
                or resolved.account.token is not None):
            # Another server's token URL, issuing off, a document a token fetch is building,
            # or a static token from the users file: leave the account as it is.
            continue
        if previewing.get():
            # A preview (zengine render, the admin API and console preview) shows where the
            # token goes but writes no token row: nobody fetches with it.
            _put(element, "token", PREVIEW_PLACEHOLDER)
            continue
        # The hook gets no request: the address comes from the request's log context.
        addr = structlog.contextvars.get_contextvars().get("client_addr")
        # The runtime's tenant ("" without [tenants]): the endpoint redeems the token with
        # that tenant's users, never with another tenant's user of the same name.
        issued = service.issue(identity.username, tenant=runtime.tenant,
                               account=resolved.account.ident, purpose="document",
                               actor="document", check_user=False,
                               user_tenant=identity.tenant or "",
                               client_addr=addr if isinstance(addr, str) else None)
        _put(element, "token", issued.token)
