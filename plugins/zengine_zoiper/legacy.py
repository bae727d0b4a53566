"""The legacy 1.0 flat format: Zoiper's example server, ``version == 1.0`` branch.

Root ``<options>`` with no ``prov_version``; each account is flat (``host`` and ``port`` apart,
numeric enums, 0/1 flags); the codec list sits under ``<options>``, not under the account.
Zoiper never documented the numeric mappings; the ones used here, and everything the mobile
catalogue can say that this format cannot, are listed in ``docs/clients.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from zengine.catalog import CodecSetting, Field
from zengine.errors import AccountDataError, NoAccounts
from zengine.models import ClientInfo, Document, Element, ResolvedAccount, Version
from zengine.runtime import Runtime

FAMILY = "legacy"
VERSION = Version(1, 0)

log = structlog.get_logger("zengine.zoiper.legacy")


def _n(name: str) -> Field:
    return Field(name, "uint")


def _s(name: str) -> Field:
    return Field(name, "string")


def _choice(name: str, *values: int) -> Field:
    return Field(name, "enum", tuple(str(v) for v in values))


def _flag(name: str) -> Field:
    return _choice(name, 0, 1)


#: Numeric ``tech``: 0 SIP is the example server's; 1 IAX2 follows the order Zoiper lists the
#: protocols in everywhere. RTSP has no legacy value: such an account is left out.
TECH = {"SIP": 0, "IAX2": 1}
#: The QR code ``tr`` parameter of the Wazo and adtek integrations (an inference, not a spec).
TRANSPORT = {"UDP": 0, "TCP": 1, "TLS": 2}
#: The order of the seed's own ``SIP_dtmf_style`` enumeration (an inference, not a spec).
SIP_DTMF = {"inband": 0, "rfc_2833": 1, "SIP_info_numeric": 2, "SIP_info_ascii": 3,
            "disabled": 4}
IAX2_DTMF = {"inband": 0, "outband": 1, "disabled": 4}

#: The account elements, in the example server's order; doubles as the legacy catalogue.
ACCOUNT_FIELDS: tuple[Field, ...] = (
    _s("username"),
    _s("password"),
    _choice("tech", *TECH.values()),
    _s("host"),
    _n("port"),
    # The proxy host; "0" when there is none, as the example server sends.
    _s("outbound_proxy"),
    _flag("use_outbound_proxy"),
    _n("outbound_proxy_port"),
    _flag("register_on_startup"),
    _s("context"),
    _n("reregistration_time"),
    _choice("transport_type", *TRANSPORT.values()),
    _flag("use_stun"),
    _s("stun_host"),
    _n("stun_port"),
    _n("stun_refresh_period"),
    _flag("use_rport"),
    _flag("use_rport_media"),
    _choice("dtmf_style", *sorted(set(SIP_DTMF.values()) | set(IAX2_DTMF.values()))),
)
CODEC_FIELDS: tuple[Field, ...] = (_n("codec_id"), _s("name"), _n("priority"), _flag("selected"))

SIP_PORT = 5060
SIPS_PORT = 5061
IAX2_PORT = 4569
#: Zoiper's documented defaults (Desktop configuration data), used where the mobile value
#: ``default`` means "the app's own default", which this format cannot say.
STUN_HOST = "stun.zoiper.com"
STUN_PORT = 3478
STUN_REFRESH = 30
REREGISTRATION = {"UDP": 60, "TCP": 600, "TLS": 600}


def split_hostport(text: str, default_port: int, what: str) -> tuple[str, int]:
    """``host[:port]`` -> ``(host, port)``; an IPv6 literal keeps its brackets (``[::1]:5060``),
    which is how SIP writes it; a bare IPv6 address gets them."""
    text = text.strip()
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1:] and not text[end + 1:].startswith(":")):
            raise AccountDataError(f"{what} {text!r} is not host[:port]")
        host, port_text = text[:end + 1], text[end + 2:]
        if text[end + 1:] == ":":
            raise AccountDataError(f"{what} {text!r} has an empty port")
    elif text.count(":") > 1:
        host = f"[{text}]"
    else:
        host, sep, port_text = text.partition(":")
        if sep and not port_text:
            raise AccountDataError(f"{what} {text!r} has an empty port")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise AccountDataError(f"{what} {text!r} has an invalid port")
    return host, int(port_text)


def _flag01(value: Any) -> str:
    return "1" if value else "0"


def account_values(values: Mapping[str, Any]) -> dict[str, str] | None:
    """The legacy account fields for one resolved account; ``None`` if it cannot be expressed."""
    protocol = values.get("protocol", "SIP")
    if protocol not in TECH:
        return None
    transport = values.get("SIP_transport_type", "UDP")
    proxy_host, proxy_port = "0", SIP_PORT
    if protocol == "IAX2":
        server = values.get("IAX2_host") or values.get("SIP_domain", "")
        host, port = split_hostport(server, IAX2_PORT, "IAX2_host")
        context = values.get("IAX2_context", "")
        dtmf = IAX2_DTMF[values.get("IAX2_dtmf_style", "outband")]
        use_proxy = False
        reregistration = REREGISTRATION["UDP"]
    else:
        default_port = SIPS_PORT if transport == "TLS" else SIP_PORT
        host, port = split_hostport(values.get("SIP_domain", ""), default_port, "SIP_domain")
        context = ""  # the example server's; the SIP domain goes to host
        dtmf = SIP_DTMF[values.get("SIP_dtmf_style", "rfc_2833")]
        use_proxy = bool(values.get("SIP_use_outbound_proxy")) and bool(
            values.get("SIP_outbound_proxy"))
        if use_proxy:
            proxy_host, proxy_port = split_hostport(values["SIP_outbound_proxy"], default_port,
                                                    "SIP_outbound_proxy")
        reregistration = REREGISTRATION[transport]
    if values.get("reregistration_mode") == "custom" and values.get("reregistration_time"):
        reregistration = values["reregistration_time"]
    use_stun = values.get("stun/use_stun", "default")
    stun_host = values.get("stun/stun_host") or ("" if use_stun == "disabled" else STUN_HOST)
    return {
        "username": values.get("username", ""),
        "password": values.get("password", ""),
        "tech": str(TECH[protocol]),
        "host": host,
        "port": str(port),
        "outbound_proxy": proxy_host,
        "use_outbound_proxy": _flag01(use_proxy),
        "outbound_proxy_port": str(proxy_port),
        "register_on_startup": _flag01(values.get("register_on_startup", True)),
        "context": context,
        "reregistration_time": str(reregistration),
        # IAX2 runs over UDP only; a SIP transport from a profile does not apply to it.
        "transport_type": str(TRANSPORT["UDP" if protocol == "IAX2" else transport]),
        "use_stun": _flag01(use_stun != "disabled"),
        "stun_host": stun_host,
        "stun_port": str(values.get("stun/stun_port") or STUN_PORT),
        "stun_refresh_period": str(values.get("stun/stun_refresh_period") or STUN_REFRESH),
        "use_rport": _flag01(values.get("SIP_use_rport", True)),
        "use_rport_media": _flag01(values.get("SIP_use_rport_media", False)),
        "dtmf_style": str(dtmf),
    }


def codecs_element(codecs: tuple[CodecSetting, ...]) -> Element:
    root = Element("codecs")
    for setting in codecs:
        root.children.append(Element("codec", children=[
            Element("codec_id", str(setting.codec.id)),
            Element("name", setting.codec.legacy_name or setting.codec.name),
            Element("priority", str(setting.priority)),
            Element("selected", _flag01(setting.enabled)),
        ]))
    return root


def build(accounts: list[ResolvedAccount], client: ClientInfo, runtime: Runtime) -> Document:
    pairs: list[tuple[Element, ResolvedAccount]] = []
    for account in accounts:
        fields = account_values(account.values)
        if fields is None:
            log.info("legacy.account_skipped", ident=account.account.ident,
                     reason=f"protocol {account.values.get('protocol')} has no legacy form")
            continue
        element = Element("account", children=[
            Element(field.name, fields[field.name]) for field in ACCOUNT_FIELDS])
        pairs.append((element, account))
    if not pairs:
        raise NoAccounts("no account can be expressed in the legacy 1.0 format")
    root = Element("options", children=[
        Element("accounts", children=[element for element, _ in pairs])])
    # Codecs are global in this format: the first account that has a list decides.
    codecs = next((a.values["codecs"] for _, a in pairs if a.values.get("codecs")), None)
    if codecs:
        root.children.append(codecs_element(codecs))
    return Document(root=root, client=client, accounts=pairs)
