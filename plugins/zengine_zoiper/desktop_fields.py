"""The Zoiper5 desktop account catalogue, derived from the mobile one.

Desktop documents (public-docs ``Desktop`` branch, configuration-data.md) use the same element
names as mobile 1.14 for the fields they share, but lower-case enumerations (``sip``, ``udp``,
``sdes``), ``true``/``false`` codec flags, and the ``key_agreement_method`` ZRTP item. Fields
are shared by path with ``zengine.catalog`` so an operator configures each value once; a mobile
field absent here is either mobile-only or not documented for desktop (``docs/clients.md``).
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from zengine import catalog

FAMILY = "desktop"

#: Mobile catalogue paths the desktop account documents, in mobile catalogue order.
SHARED = frozenset({
    "ident", "name", "username", "password", "register_on_startup",
    "do_not_play_ringback_tones", "voicemail_check_extension", "voicemail_transfer_extension",
    "force_rfc3264", "use_kpml", "use_overlap_dialing", "use_custom_ringtone",
    "custom_ringtone_location", "use_custom_certificate", "custom_certificate_location",
    "custom_certificate", "mwi_subscribe_usage", "use_number_rewriting",
    "number_rewriting_country", "number_rewriting_prefix", "use_strip_dial_chars",
    "strip_dial_chars", "protocol", "rtcp_profile_type", "reregistration_mode",
    "reregistration_time",
    "resubscription_mode", "resubscription_time", "SIP_domain", "SIP_use_outbound_proxy",
    "SIP_outbound_proxy", "SIP_transport_type", "SIP_use_auth_username", "SIP_auth_username",
    "SIP_callerId", "SIP_use_rport", "SIP_use_rport_media", "SIP_srtp_mode", "SIP_dtmf_style",
    "SIP_use_blf", "SIP_publish_presence", "SIP_subscribe_presence", "SIP_keep_alive_mode",
    "SIP_keep_alive_timeout", "stun/use_stun", "stun/stun_host", "stun/stun_port",
    "stun/stun_refresh_period", "IAX2_host", "IAX2_context", "IAX2_callerId",
    "IAX2_callerNumber", "IAX2_dtmf_style", "enabled_video_fmtp", "codecs", "zrtp",
})

#: Mobile fields Zoiper documents as mobile-only (public-docs Desktop, configuration-data.md).
MOBILE_ONLY = frozenset({
    "enable_push_notifications", "token", "token_url", "balance_url", "rate_url",
    "quality_rating_url", "SIP_use_reg_event",
})

#: Mobile fields the desktop documentation does not list: not sent, a desktop client would
#: at best ignore them.
NOT_DOCUMENTED = frozenset({
    "enable_file_transfer", "SIP_use_preconditions", "msrp/enabled", "msrp/force_msrp_for_chat",
    "msrp/enable_tls", "msrp/enable_relay", "msrp/relay_uri", "msrp/relay_username",
    "msrp/relay_password", "sms/enabled", "sms/enable_sms_center", "sms/sms_center_uri",
})

#: Mobile value -> desktop value, for enumerations whose spelling differs. A mobile value with
#: no desktop spelling (protocol ``RTSP``) cannot be expressed: the account is left out.
VALUE_MAP: dict[str, dict[str, str]] = {
    "protocol": {"SIP": "sip", "IAX2": "iax2"},
    "SIP_transport_type": {"UDP": "udp", "TCP": "tcp", "TLS": "tls"},
    "SIP_srtp_mode": {"none": "none", "SDES": "sdes"},
}

#: Values the desktop documentation allows, where they differ from the mobile catalogue's.
DESKTOP_VALUES: dict[str, tuple[str, ...]] = {
    "protocol": ("sip", "iax2", "http_phone_control"),
    "SIP_transport_type": ("udp", "tcp", "tls"),
    "SIP_srtp_mode": ("none", "sdes"),
    "SIP_dtmf_style": ("inband", "outband", "rfc_2833", "SIP_info_numeric", "SIP_info_ascii",
                       "disabled"),
    "IAX2_dtmf_style": ("outband", "inband", "disabled"),
}

#: ZRTP item element names on desktop (the text of configuration-data.md).
ZRTP_ITEMS: dict[str, str] = {
    "hash_algorithms": "hash_algorithm",
    "cipher_algorithms": "cipher_algorithm",
    "auth_tags": "auth_tag",
    "key_agreement_methods": "key_agreement_method",
    "sas_encodings": "sas_encoding",
}

#: Desktop ZRTP ids (public-docs), including those marked "not yet supported", which the
#: catalogue refuses to configure; the catalogue's ids must agree with these.
ZRTP_IDS: dict[str, dict[str, int]] = {
    "hash_algorithms": {"S256": 0, "S384": 1, "N256": 2, "N384": 3},
    "cipher_algorithms": {"AES1": 0, "AES2": 1, "AES3": 2, "2FS1": 3, "2FS2": 4, "2FS3": 5},
    "auth_tags": {"HS32": 0, "HS80": 1, "SK32": 2, "SK64": 3},
    "key_agreement_methods": {"DH3K": 0, "DH2K": 1, "EC25": 2, "EC38": 3, "PRSH": 4,
                              "MULT": 5},
    "sas_encodings": {"B32": 0, "B256": 1},
}

#: Desktop codec ids (public-docs): the catalogue's plus ids zengine cannot configure.
CODEC_IDS = frozenset({-1, 0, 1, 6, 7, 16, 18, *range(24, 44)})

#: Options-level fields shared with mobile (``[document]``); desktop has no ``prov_version``,
#: ``customer_sid``, ``prov_id``, ``prov_name`` or ``breakpad`` (it has ``crash_handler``).
OPTIONS_SHARED = frozenset({
    "diagnostics/enable_debug_log", "diagnostics/enable_extra_dmp",
    "diagnostics/enable_audio_debug",
})


def _desktop(field: catalog.Field) -> catalog.Field:
    values = DESKTOP_VALUES.get(field.path, field.values)
    # One format, no versions: no since-version and no older names.
    return dataclasses.replace(field, values=values, since=None, old_names=(), aliases=(),
                               both_names=())


#: Where each desktop-only field (``catalog.DESKTOP_ONLY_FIELDS``) goes: after this shared
#: field, following the order of the desktop documentation.
DESKTOP_ONLY_AFTER: dict[str, tuple[str, ...]] = {
    "username": ("save_username",),
    "password": ("save_password",),
    "resubscription_time": ("send_typing_notification",),
    "SIP_keep_alive_timeout": ("SIP_use_cisco", "SIP_cisco_device_name"),
    "IAX2_dtmf_style": ("HTTP_PHONE_CONTROL_host", "HTTP_PHONE_CONTROL_path",
                        "HTTP_PHONE_CONTROL_number", "HTTP_PHONE_CONTROL_outgoing_uri",
                        "HTTP_PHONE_CONTROL_answer", "HTTP_PHONE_CONTROL_hangup"),
}


#: Desktop-only fields configured with the account but sent at the options level.
DOCUMENT_LEVEL = frozenset({"contact_services"})


@cache
def account_fields() -> tuple[catalog.Field, ...]:
    """Shared fields in mobile catalogue order, desktop-only ones after their anchors."""
    only = {f.path: f for f in catalog.DESKTOP_ONLY_FIELDS if f.path not in DOCUMENT_LEVEL}
    fields: list[catalog.Field] = []
    for field in catalog.ACCOUNT_FIELDS:
        if field.path in SHARED:
            fields.append(_desktop(field))
            fields.extend(only[path] for path in DESKTOP_ONLY_AFTER.get(field.path, ()))
    return tuple(fields)


@cache
def options_fields() -> tuple[catalog.Field, ...]:
    return tuple(_desktop(f) for f in catalog.OPTIONS_FIELDS if f.path in OPTIONS_SHARED)


def desktop_value(field: catalog.Field, value: Any) -> str | None:
    """The desktop text of a resolved mobile value; ``None`` when desktop cannot say it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    mapping = VALUE_MAP.get(field.path)
    if mapping is not None:
        return mapping.get(str(value))
    return str(value)
