"""The Zoiper5 desktop family: ``options/accounts/account`` in the desktop's own spelling.

Zoiper5 sends no version and has one format, so there are no transform steps and no
``prov_version``. It lays the remote document over its local ``Config.xml``: only what is sent
is changed, which is why a field without a value is left out rather than sent empty.
"""

from __future__ import annotations

from typing import Any

import structlog

from zengine import contacts
from zengine.catalog import Field
from zengine.errors import NoAccounts
from zengine.models import ClientInfo, Document, Element, ResolvedAccount, Version
from zengine.runtime import Runtime
from zengine_zoiper import desktop_fields
from zengine_zoiper.elements import codecs_element, fields_to_elements, zrtp_element

FAMILY = desktop_fields.FAMILY
#: A label for logs and audit ("Zoiper5"), not a provisioning format version.
VERSION = Version(5, 0)

log = structlog.get_logger("zengine.zoiper.desktop")


class _NoDesktopForm(Exception):
    """A value desktop cannot say (protocol ``RTSP``): the account is left out."""


def _text(field: Field, value: Any) -> str:
    text = desktop_fields.desktop_value(field, value)
    if text is None:
        raise _NoDesktopForm(f"{field.path} {value}")
    return text


def _flag(value: bool) -> str:
    return "true" if value else "false"


_SPECIAL: dict[str, Any] = {
    "codecs": lambda value: codecs_element(value, flag=_flag) if value else None,
    "zrtp": lambda value: zrtp_element(value, desktop_fields.ZRTP_ITEMS),
}


def account_element(account: ResolvedAccount) -> Element | None:
    """The desktop account, or ``None`` when a value has no desktop spelling."""
    try:
        children = fields_to_elements(desktop_fields.account_fields(), account.values, _text,
                                      _SPECIAL)
    except _NoDesktopForm as exc:
        log.info("desktop.account_skipped", ident=account.account.ident,
                 reason=f"{exc} has no desktop form")
        return None
    return Element("account", children=children)


def build(accounts: list[ResolvedAccount], client: ClientInfo, runtime: Runtime) -> Document:
    pairs = []
    for account in accounts:
        element = account_element(account)
        if element is not None:
            pairs.append((element, account))
    if not pairs:
        raise NoAccounts("no account can be expressed in the desktop format")
    root = Element("options", children=[
        Element("accounts", children=[element for element, _ in pairs])])
    root.children.extend(fields_to_elements(desktop_fields.options_fields(),
                                            runtime.settings.document, _text))
    document = Document(root=root, client=client, accounts=pairs)
    # The contact services of every account's profile; one profile's appear once.
    contacts.add_services(document, [service for _, account in pairs
                                     for service in account.values.get("contact_services", ())])
    return document
