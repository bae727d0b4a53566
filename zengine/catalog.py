"""The Zoiper mobile field catalogue: the one source of truth for every field zengine emits.

Order matters: the tuples below follow the seed example (``shared/reference/seed-example.xml``),
and the mobile builder emits fields in this order. Since-versions and the names older clients
used come from Zoiper's example server (see ``docs/clients.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from zengine.errors import ConfigError
from zengine.models import Version

FieldType = Literal["string", "bool", "uint", "enum", "codecs", "zrtp"]

# XML 1.0 ``Char`` production: anything else cannot be carried by a well-formed document.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_invalid_char(text: str) -> str | None:
    """Return the first character XML 1.0 cannot carry, or ``None``."""
    match = _XML_INVALID.search(text)
    return match.group(0) if match else None


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
    _f("voicemail_transfer_extension", "string",
       old_names=((_V14, "voicemaile_transfer_extension"),)),
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
    _f("token", "string", secret=True),
    _f("token_url", "string"),
    _f("balance_url", "string"),
    _f("rate_url", "string"),
    _f("quality_rating_url", "string", since=V("1.7")),
    _e("protocol", "SIP IAX2 RTSP", "SIP"),
    _e("reregistration_mode", "default custom", "default"),
    _f("reregistration_time", "uint"),
    _e("resubscription_mode", "default custom", "default"),
    _f("resubscription_time", "uint"),
    _f("SIP_domain", "string"),
    _b("SIP_use_outbound_proxy", False),
    _f("SIP_outbound_proxy", "string"),
    _e("SIP_transport_type", "UDP TCP TLS", "UDP"),
    _b("SIP_use_auth_username", False),
    _f("SIP_auth_username", "string"),
    _f("SIP_callerId", "string", old_names=((_V14, "SIP_callerid"),)),
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
    _f("IAX2_callerId", "string", old_names=((_V14, "IAX2_callerid"),)),
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

#: Fields an :class:`~zengine.models.Account` sets itself; a profile may not override them.
ACCOUNT_OWNED = frozenset({"ident", "username", "password", "token"})


@cache
def account_fields() -> dict[str, Field]:
    return {f.path: f for f in ACCOUNT_FIELDS}


@cache
def options_fields() -> dict[str, Field]:
    return {f.path: f for f in OPTIONS_FIELDS}


# --- codecs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    id: int
    name: str
    aliases: tuple[str, ...] = ()
    video: bool = False


#: Zoiper codec ids (public-docs and the example server's config.php).
CODECS: tuple[Codec, ...] = (
    Codec(0, "ulaw", ("pcmu", "g711u", "g711ulaw")),
    Codec(1, "gsm"),
    Codec(6, "alaw", ("pcma", "g711a", "g711alaw")),
    Codec(7, "g722"),
    Codec(16, "g729"),
    Codec(18, "mjpeg", video=True),
    Codec(24, "speex_narrow", ("speex", "speex8k")),
    Codec(25, "speex_wide", ("speex16k",)),
    Codec(26, "speex_ultra", ("speex32k",)),
    Codec(27, "ilbc30"),
    Codec(28, "ilbc20"),
    Codec(29, "g726", ("g72632",)),
    Codec(30, "h263_plus", ("h263p", "h2631998"), video=True),
    Codec(31, "vp8", video=True),
    Codec(32, "h264", video=True),
    Codec(33, "telephone_event", ("rfc2833",)),
    Codec(34, "opus_narrow", ("opus8k",)),
    Codec(35, "opus_wide", ("opus16k",)),
    Codec(36, "opus_super", ("opus24k",)),
    Codec(37, "opus_full", ("opus48k",)),
    Codec(38, "amr"),
    Codec(39, "amr_wb"),
    Codec(40, "h264_hw", video=True),
)


def _norm(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name).lower()


@cache
def _codec_index() -> dict[str, Codec]:
    index: dict[str, Codec] = {}
    for codec in CODECS:
        index[str(codec.id)] = codec
        for name in (codec.name, *codec.aliases):
            index[_norm(name)] = codec
    return index


def codec_by_key(key: str | int) -> Codec | None:
    if isinstance(key, bool):
        return None
    return _codec_index().get(str(key) if isinstance(key, int) else _norm(key))


@dataclass(frozen=True)
class CodecSetting:
    codec: Codec
    priority: int
    enabled: bool = True
    bps: int | None = None
    dtx: bool | None = None
    vbr: bool | None = None


# --- ZRTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZrtpList:
    """One ZRTP algorithm list: section name, item element name, and ``name -> id``."""

    section: str
    item: str
    ids: tuple[tuple[str, int], ...]
    old_item: tuple[tuple[Version, str], ...] = ()


# Ids from Zoiper's public docs; algorithms the docs mark "not yet supported" are refused.
ZRTP_LISTS: tuple[ZrtpList, ...] = (
    ZrtpList("hash_algorithms", "hash_algorithm", (("S256", 0), ("S384", 1))),
    ZrtpList("cipher_algorithms", "cipher_algorithm",
             (("AES1", 0), ("AES2", 1), ("AES3", 2), ("2FS1", 3), ("2FS2", 4), ("2FS3", 5))),
    ZrtpList("auth_tags", "auth_tag", (("HS32", 0), ("HS80", 1))),
    ZrtpList("key_agreement_methods", "key_agreement",
             (("DH3K", 0), ("DH2K", 1), ("EC25", 2), ("EC38", 3)),
             old_item=((_V14, "key_agreement_method"),)),
    ZrtpList("sas_encodings", "sas_encoding", (("B32", 0), ("B256", 1))),
)
#: The seed writes the cipher ``AES51`` with id 0; accept it as the documented ``AES1``.
_ZRTP_ALIASES = {"AES51": "AES1"}


@dataclass(frozen=True)
class ZrtpItem:
    name: str
    id: int
    priority: int
    selected: bool = True


@dataclass(frozen=True)
class ZrtpSetting:
    enabled: bool
    lists: tuple[tuple[str, tuple[ZrtpItem, ...]], ...] = ()


# --- validation ----------------------------------------------------------------------------


def _err(where: str, path: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: field {path!r} has invalid value {value!r}; allowed: {allowed}")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def _as_uint(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def coerce(field: Field, value: Any, where: str) -> Any:
    """Validate one configured value and return it in its typed, canonical form."""
    if field.type == "bool":
        result = _as_bool(value)
        if result is None:
            raise _err(where, field.path, value, "true, false")
        return result
    if field.type == "uint":
        number = _as_uint(value)
        if number is None or number > 2**32 - 1:
            raise _err(where, field.path, value, "an unsigned integer")
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
        raise _err(where, field.path, value, ", ".join(field.values))
    if field.type == "string":
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _err(where, field.path, value, "a string")
        text = str(value)
        bad = xml_invalid_char(text)
        if bad is not None:
            raise ConfigError(
                f"{where}: field {field.path!r} contains the character U+{ord(bad):04X}, "
                "which an XML 1.0 document cannot carry"
            )
        return text
    if field.type == "codecs":
        return coerce_codecs(value, where)
    return coerce_zrtp(value, where)


def coerce_codecs(value: Any, where: str) -> tuple[CodecSetting, ...]:
    if not isinstance(value, list):
        raise _err(where, "codecs", value, "a list of codec names or ids, in priority order")
    allowed = ", ".join(c.name for c in CODECS)
    result: list[CodecSetting] = []
    seen: set[int] = set()
    for index, item in enumerate(value, start=1):
        options: dict[str, Any] = {}
        if isinstance(item, dict):
            options = dict(item)
            key = options.pop("codec", None)
        else:
            key = item
        codec = codec_by_key(key) if isinstance(key, str | int) else None
        if codec is None:
            raise _err(where, f"codecs[{index}]", key, allowed)
        if codec.id in seen:
            raise ConfigError(f"{where}: codec {codec.name!r} is listed twice")
        seen.add(codec.id)
        unknown = set(options) - {"enabled", "bps", "dtx", "vbr"}
        if unknown:
            raise ConfigError(
                f"{where}: codec {codec.name!r} has unknown keys {sorted(unknown)}; "
                "allowed: codec, enabled, bps, dtx, vbr"
            )
        flags: dict[str, bool | None] = {}
        for flag in ("enabled", "dtx", "vbr"):
            if flag in options:
                flags[flag] = _as_bool(options[flag])
                if flags[flag] is None:
                    raise _err(where, f"codecs[{index}].{flag}", options[flag], "true, false")
        bps = None
        if "bps" in options:
            bps = _as_uint(options["bps"])
            if bps is None:
                raise _err(where, f"codecs[{index}].bps", options["bps"], "an unsigned integer")
        result.append(CodecSetting(codec, index, flags.get("enabled", True) is not False,
                                   bps, flags.get("dtx"), flags.get("vbr")))
    return tuple(result)


def coerce_zrtp(value: Any, where: str) -> ZrtpSetting:
    if isinstance(value, ZrtpSetting):
        return value
    if not isinstance(value, dict):
        raise _err(where, "zrtp", value, "a table with enabled and algorithm lists")
    known = {z.section: z for z in ZRTP_LISTS}
    unknown = set(value) - set(known) - {"enabled"}
    if unknown:
        raise ConfigError(f"{where}: zrtp has unknown keys {sorted(unknown)}; "
                          f"allowed: enabled, {', '.join(known)}")
    enabled = _as_bool(value.get("enabled", True))
    if enabled is None:
        raise _err(where, "zrtp/enabled", value.get("enabled"), "true, false")
    lists: list[tuple[str, tuple[ZrtpItem, ...]]] = []
    for spec in ZRTP_LISTS:
        if spec.section not in value:
            continue
        names = value[spec.section]
        if not isinstance(names, list):
            raise _err(where, f"zrtp/{spec.section}", names, "a list of names")
        ids = dict(spec.ids)
        items = []
        for priority, raw in enumerate(names):
            name = str(raw).upper()
            name = _ZRTP_ALIASES.get(name, name)
            if name not in ids:
                raise _err(where, f"zrtp/{spec.section}", raw, ", ".join(ids))
            items.append(ZrtpItem(name, ids[name], priority))
        lists.append((spec.section, tuple(items)))
    return ZrtpSetting(enabled, tuple(lists))


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
    by_lower = {path.lower(): path for path in fields}
    result: dict[str, Any] = {}
    for raw_path, value in flatten(nested).items():
        path = PATH_ALIASES.get(raw_path, raw_path)
        if path not in fields:
            hint = by_lower.get(path.lower())
            suggestion = f" (did you mean {hint!r}?)" if hint else ""
            raise ConfigError(f"{where}: unknown field {raw_path!r}{suggestion}")
        if path in forbidden:
            raise ConfigError(f"{where}: field {path!r} is set per account, not here")
        result[path] = coerce(fields[path], value, where)
    return result
