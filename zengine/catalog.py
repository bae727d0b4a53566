"""The Zoiper mobile field catalogue: the one source of truth for every field zengine emits.

Order matters: the tuples below follow the seed example (``shared/reference/seed-example.xml``),
and the mobile builder emits fields in this order. Since-versions and the names older clients
used come from Zoiper's example server (see ``docs/clients.md``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

from zengine.contacts import coerce_contact_services
from zengine.errors import ConfigError
from zengine.media import (  # re-exported: the catalogue is where plugins look for them
    CODECS,
    ZRTP_LISTS,
    Codec,
    CodecSetting,
    ZrtpItem,
    ZrtpList,
    ZrtpSetting,
    codec_by_key,
    coerce_codecs,
    coerce_zrtp,
)
from zengine.models import Version
from zengine.values import as_bool as _as_bool
from zengine.values import as_uint as _as_uint
from zengine.values import invalid as _err
from zengine.values import url_safe, xml_invalid_char

FieldType = Literal["string", "bool", "uint", "enum", "codecs", "zrtp", "contacts"]

# XML 1.0 ``Char`` production: anything else cannot be carried by a well-formed document.
def V(text: str) -> Version:
    return Version.parse(text)


@dataclass(frozen=True)
class Field:
    """One element of the document.

    ``path`` is relative to ``options/accounts/account`` (scope ``account``) or to ``options``
    (scope ``options``). ``default`` is what zengine emits when nothing is configured; ``None``
    means "omit and let the client keep its own default" (used where Zoiper's defaults differ by
    platform). ``old_names`` lists ``(first version with the current name, older name)``.
    """

    path: str
    type: FieldType
    values: tuple[str, ...] = ()
    default: Any = None
    since: Version | None = None
    old_names: tuple[tuple[Version, str], ...] = ()
    secret: bool = False
    scope: Literal["account", "options"] = "account"
    #: Input spellings accepted for enum values, mapped to the emitted spelling.
    aliases: tuple[tuple[str, str], ...] = ()
    #: ``(first version that gets only the current name, older name)``: older clients get the
    #: element under both names, for renames no source dates (``docs/clients.md``).
    both_names: tuple[tuple[Version, str], ...] = ()
    #: Sent even when nothing is configured (the catalogue default): part of what an account
    #: *is* (how it reaches its server), not a preference the user may have changed in the
    #: app; an outbound proxy or auth username the backend dropped must be switched off.
    needed: bool = False
    #: Only ``A-Z a-z 0-9 - . _ ~`` (RFC 3986 unreserved), for a value Zoiper puts in a URL
    #: without encoding it (``token`` is appended to ``token_url`` as it is).
    url_safe: bool = False

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    def name_for(self, version: Version) -> str:
        """The element name a client of ``version`` expects."""
        for first, old in self.old_names:
            if version < first:
                return old
        return self.name


def _f(path: str, type_: FieldType, default: Any = None, **kw: Any) -> Field:
    return Field(path, type_, default=default, **kw)


def _b(path: str, default: bool | None = None, **kw: Any) -> Field:
    return Field(path, "bool", ("true", "false"), default, **kw)


def _e(path: str, values: str, default: str | None = None, **kw: Any) -> Field:
    return Field(path, "enum", tuple(values.split()), default, **kw)


_V14 = V("1.14")

ACCOUNT_FIELDS: tuple[Field, ...] = (
    _f("ident", "string"),
    _f("name", "string"),
    _f("username", "string"),
    _f("password", "string", secret=True),
    _b("register_on_startup", True),
    _b("enable_push_notifications", False),
    _b("do_not_play_ringback_tones", False),
    _f("voicemail_check_extension", "string"),
    # 1.5-1.13 get both spellings: the example server sent the old one until 1.13 (and still
    # does on its 2025 branch), a README labelled 1.13 already used the new one.
    _f("voicemail_transfer_extension", "string",
       both_names=((_V14, "voicemaile_transfer_extension"),)),
    _b("force_rfc3264", False),
    _b("use_kpml", False),
    _b("use_overlap_dialing", False),
    _b("use_custom_ringtone", False),
    _f("custom_ringtone_location", "string"),
    _e("use_custom_certificate", "none common location configuration self_signed", "none"),
    # The seed spells this ``custom_certicate_location``; Zoiper's server and docs do not.
    _f("custom_certificate_location", "string"),
    _f("custom_certificate", "string"),
    _e("mwi_subscribe_usage", "disabled before after both"),
    _b("use_number_rewriting", False),
    _f("number_rewriting_country", "string"),
    _f("number_rewriting_prefix", "string"),
    _b("use_strip_dial_chars", since=V("1.6")),
    _f("strip_dial_chars", "string", since=V("1.6")),
    _f("token", "string", secret=True, url_safe=True),
    _f("token_url", "string"),
    _f("balance_url", "string"),
    _f("rate_url", "string"),
    _f("quality_rating_url", "string", since=V("1.7")),
    _e("protocol", "SIP IAX2 RTSP", "SIP", needed=True),
    # Android public-docs 1.14.3 and its example dump (not the seed, not iOS); since 1.14 is an
    # inference from that doc's version.
    _e("rtcp_profile_type", "avp avpf both", since=_V14),
    _e("reregistration_mode", "default custom", "default"),
    _f("reregistration_time", "uint"),
    _e("resubscription_mode", "default custom", "default"),
    _f("resubscription_time", "uint"),
    _f("SIP_domain", "string"),
    _b("SIP_use_outbound_proxy", False, needed=True),
    _f("SIP_outbound_proxy", "string"),
    _e("SIP_transport_type", "UDP TCP TLS", "UDP", needed=True),
    _b("SIP_use_auth_username", False, needed=True),
    _f("SIP_auth_username", "string"),
    _f("SIP_callerId", "string", both_names=((_V14, "SIP_callerid"),)),
    _b("SIP_use_rport", True),
    _b("SIP_use_rport_media", False),
    _e("SIP_srtp_mode", "none SDES", "none"),
    _e("SIP_dtmf_style", "inband rfc_2833 SIP_info_numeric SIP_info_ascii disabled", "rfc_2833",
       aliases=(("outband", "rfc_2833"), ("disbaled", "disabled"))),
    _b("SIP_use_blf", False),
    _b("SIP_publish_presence", False),
    _b("SIP_subscribe_presence", False),
    _e("SIP_keep_alive_mode", "disabled default custom", "default"),
    _f("SIP_keep_alive_timeout", "uint"),
    _b("SIP_use_preconditions", False, since=V("1.10")),
    _b("SIP_use_reg_event", False, since=V("1.12")),
    _e("stun/use_stun", "disabled custom default", "default"),
    _f("stun/stun_host", "string"),
    _f("stun/stun_port", "uint"),
    _f("stun/stun_refresh_period", "uint"),
    _f("IAX2_host", "string"),
    _f("IAX2_context", "string"),
    _f("IAX2_callerId", "string", both_names=((_V14, "IAX2_callerid"),)),
    _f("IAX2_callerNumber", "string"),
    _e("IAX2_dtmf_style", "inband disabled outband"),
    _b("enable_file_transfer", since=_V14),
    _b("enabled_video_fmtp", since=_V14),
    _b("msrp/enabled", since=V("1.8"), old_names=((_V14, "enable_msrp"),)),
    _b("msrp/force_msrp_for_chat", since=V("1.8")),
    _b("msrp/enable_tls", since=V("1.9")),
    _b("msrp/enable_relay", since=V("1.8"), old_names=((_V14, "enable_msrp_relay"),)),
    _f("msrp/relay_uri", "string"),
    _f("msrp/relay_username", "string", since=V("1.8")),
    _f("msrp/relay_password", "string", since=V("1.8"), secret=True),
    _b("sms/enabled"),
    _b("sms/enable_sms_center"),
    _f("sms/sms_center_uri", "string"),
    _f("codecs", "codecs"),
    _f("zrtp", "zrtp", since=V("1.11")),
)

OPTIONS_FIELDS: tuple[Field, ...] = (
    _f("customer_sid", "string", scope="options"),
    _f("prov_id", "string", scope="options"),
    _f("prov_name", "string", scope="options"),
    _b("diagnostics/enable_debug_log", False, since=V("1.5"), scope="options"),
    _b("diagnostics/enable_extra_dmp", False, since=V("1.5"), scope="options"),
    _b("diagnostics/enable_audio_debug", False, since=V("1.5"), scope="options"),
    _b("breakpad/enabled", scope="options"),
    _b("breakpad/upload_dumps", scope="options"),
    _b("breakpad/ask_user_for_upload", scope="options"),
)

#: Account fields only the Zoiper5 desktop client documents (public-docs ``Desktop``
#: configuration-data.md). Operators configure them like any other; mobile documents never
#: carry them, and nothing is emitted unless configured.
DESKTOP_ONLY_FIELDS: tuple[Field, ...] = (
    _b("save_username"),
    _b("save_password"),
    _b("send_typing_notification"),
    _b("SIP_use_cisco"),
    _f("SIP_cisco_device_name", "string"),
    _f("HTTP_PHONE_CONTROL_host", "string"),
    _f("HTTP_PHONE_CONTROL_path", "string"),
    _f("HTTP_PHONE_CONTROL_number", "string"),
    _f("HTTP_PHONE_CONTROL_outgoing_uri", "string"),
    _f("HTTP_PHONE_CONTROL_answer", "string"),
    _f("HTTP_PHONE_CONTROL_hangup", "string"),
    # Options-level in the document (``options/contact_services``), configured per profile:
    # a desktop document carries the services of its accounts' profiles (``zengine.contacts``).
    _f("contact_services", "contacts", secret=True),
)

#: Fields an :class:`~zengine.models.Account` sets itself; a profile may not override them.
ACCOUNT_OWNED = frozenset({"ident", "username", "password", "token"})


@cache
@cache
def account_fields() -> Mapping[str, Field]:
    """Every configurable account field: the mobile catalogue plus the desktop-only fields
    (built once, read-only: every login validates against it)."""
    return MappingProxyType({f.path: f for f in (*ACCOUNT_FIELDS, *DESKTOP_ONLY_FIELDS)})


@cache
def default_values(send_defaults: bool = False) -> dict[str, Any]:
    """Account fields zengine emits when nothing is configured: the ``needed`` ones, or every
    catalogue default with ``[document] send_defaults = true``. A default sent at every app
    start would override what the user chose in the app (``enable_push_notifications``)."""
    return {f.path: f.default for f in ACCOUNT_FIELDS
            if f.default is not None and (send_defaults or f.needed)}


@cache
def option_defaults(send_defaults: bool = False) -> dict[str, Any]:
    """Options-level fields emitted when nothing is configured (see :func:`default_values`)."""
    return {f.path: f.default for f in OPTIONS_FIELDS
            if f.default is not None and (send_defaults or f.needed)}


@cache
@cache
def options_fields() -> Mapping[str, Field]:
    return MappingProxyType({f.path: f for f in OPTIONS_FIELDS})


# --- validation ----------------------------------------------------------------------------



def coerce(field: Field, value: Any, where: str) -> Any:
    """Validate one configured value and return it in its typed, canonical form."""
    shown = "<secret>" if field.secret else value
    if field.type == "bool":
        result = _as_bool(value)
        if result is None:
            raise _err(where, field.path, shown, "true, false")
        return result
    if field.type == "uint":
        number = _as_uint(value)
        if number is None or number > 2**32 - 1:
            raise _err(where, field.path, shown, "an unsigned integer")
        return number
    if field.type == "enum":
        if isinstance(value, str):
            wanted = value.strip().lower()
            for alias, target in field.aliases:
                if alias.lower() == wanted:
                    return target
            for allowed in field.values:
                if allowed.lower() == wanted:
                    return allowed
        raise _err(where, field.path, shown, ", ".join(field.values))
    if field.type == "string":
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _err(where, field.path, shown, "a string")
        text = str(value)
        bad = xml_invalid_char(text)
        if bad is not None:
            raise ConfigError(
                f"{where}: field {field.path!r} contains the character U+{ord(bad):04X}, "
                "which an XML 1.0 document cannot carry"
            )
        if field.url_safe and not url_safe(text):
            # The value may be secret (a token): name the rule, never the value.
            raise ConfigError(
                f"{where}: field {field.path!r} may contain only A-Z a-z 0-9 - . _ ~, because "
                "Zoiper appends it to a URL without encoding it")
        return text
    if field.type == "codecs":
        return coerce_codecs(value, where)
    if field.type == "contacts":
        return coerce_contact_services(value, where)
    return coerce_zrtp(value, where)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"stun": {"use_stun": "custom"}}`` -> ``{"stun/use_stun": "custom"}``.

    ``codecs`` and ``zrtp`` are structured values and stay whole.
    """
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in ("zrtp",):
            flat.update(flatten(value, f"{path}/"))
        else:
            flat[path] = value
    return flat


# Spellings operators may know from the seed or older documents, mapped to catalogue paths.
PATH_ALIASES = {
    "custom_certicate_location": "custom_certificate_location",
    "enable_video_fmtp": "enabled_video_fmtp",
    "voicemaile_transfer_extension": "voicemail_transfer_extension",
    "SIP_callerid": "SIP_callerId",
    "IAX2_callerid": "IAX2_callerId",
    "msrp/enable_msrp": "msrp/enabled",
    "msrp/enable_msrp_relay": "msrp/enable_relay",
}


def validate_fields(
    nested: Mapping[str, Any],
    where: str,
    *,
    scope: Literal["account", "options"] = "account",
    forbid: Iterable[str] = (),
) -> dict[str, Any]:
    """Validate a table of catalogue fields; return ``path -> typed value``.

    Errors name the field, the value and what is allowed, so ``zengine check-config`` can tell
    an operator exactly what to fix.
    """
    fields = account_fields() if scope == "account" else options_fields()
    forbidden = set(forbid)
    result: dict[str, Any] = {}
    for raw_path, value in flatten(nested).items():
        path = PATH_ALIASES.get(raw_path, raw_path)
        if path not in fields:
            # Built only for the error's hint: every login validates a few (mostly empty)
            # tables, and this map of the whole catalogue was most of their cost.
            by_lower = {name.lower(): name for name in fields}
            hint = by_lower.get(path.lower())
            suggestion = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(f"{where}: unknown field {raw_path!r}{suggestion}")
        if path in forbidden:
            raise ConfigError(f"{where}: field {path!r} is set per account, not here")
        result[path] = coerce(fields[path], value, where)
    return result


# Placeholders Zoiper's OEM pages call required: the phone fills them, upper case only.
REQUIRED_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "balance_url": ("${USERNAME}", "${PASSWORD}"),
    "rate_url": ("${DESTINATION}",),
}


def url_warnings(values: Mapping[str, Any], where: str) -> list[str]:
    """What ``zengine check-config`` warns about in a table of validated account fields: a
    ``balance_url`` or ``rate_url`` without the placeholders Zoiper needs to fill."""
    warnings = []
    for path, required in REQUIRED_PLACEHOLDERS.items():
        url = values.get(path)
        if not isinstance(url, str) or not url:
            continue
        missing = [p for p in required if p not in url]
        if missing:
            warnings.append(f"{where}: {path} lacks {', '.join(missing)}, which Zoiper's OEM "
                            "documentation calls required (the phone fills it; upper case)")
    return warnings


__all__ = [
    "ACCOUNT_FIELDS", "ACCOUNT_OWNED", "CODECS", "DESKTOP_ONLY_FIELDS", "OPTIONS_FIELDS",
    "PATH_ALIASES", "ZRTP_LISTS",
    "Codec", "CodecSetting", "Field", "V", "ZrtpItem", "ZrtpList", "ZrtpSetting",
    "account_fields", "codec_by_key", "coerce", "coerce_codecs", "coerce_zrtp",
    "default_values", "flatten", "option_defaults", "options_fields", "url_warnings",
    "validate_fields", "xml_invalid_char",
]
