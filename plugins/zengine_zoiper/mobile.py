"""The mobile family (branded Android and iOS apps): the seed document, ``prov_version`` 1.14.

Older 1.x clients get this document through the transform steps registered for the family.
"""

from __future__ import annotations

from typing import Any

from zengine.catalog import ACCOUNT_FIELDS, OPTIONS_FIELDS, ZRTP_LISTS, option_defaults
from zengine.models import ClientInfo, Document, Element, ResolvedAccount, Version
from zengine.runtime import Runtime
from zengine_zoiper.elements import codecs_element, fields_to_elements, mobile_text, zrtp_element

FAMILY = "mobile"
NEWEST = Version(1, 14)

_ZRTP_ITEMS = {spec.section: spec.item for spec in ZRTP_LISTS}


def _codec_flag(value: bool) -> str:
    # The seed types dtx/vbr as "long": 1/0.
    return "1" if value else "0"


def account_element(account: ResolvedAccount) -> Element:
    special: dict[str, Any] = {
        "codecs": lambda value: codecs_element(value, flag=_codec_flag) if value else None,
        "zrtp": lambda value: zrtp_element(value, _ZRTP_ITEMS),
    }
    children = fields_to_elements(ACCOUNT_FIELDS, account.values, mobile_text, special)
    return Element("account", children=children)


# Options-level fields: plain ones before <accounts>, sections (diagnostics, breakpad) after.
_HEAD = tuple(f for f in OPTIONS_FIELDS if "/" not in f.path)
_TAIL = tuple(f for f in OPTIONS_FIELDS if "/" in f.path)


def build(accounts: list[ResolvedAccount], client: ClientInfo, runtime: Runtime) -> Document:
    settings = runtime.settings
    values = dict(option_defaults(settings.send_defaults))
    values.update(settings.document)
    root = Element("options", children=[Element("prov_version", str(client.version))])
    root.children.extend(fields_to_elements(_HEAD, values, mobile_text))
    pairs = [(account_element(account), account) for account in accounts]
    root.children.append(Element("accounts", children=[element for element, _ in pairs]))
    root.children.extend(fields_to_elements(_TAIL, values, mobile_text))
    return Document(root=root, client=client, accounts=pairs)
