"""The mobile 1.14 renderer: every element of the seed, in the seed's order and nesting."""

from __future__ import annotations

from typing import Any

from lxml import etree
from pydantic import SecretStr

from tests.conftest import ROOT
from zengine import hookimpl
from zengine.models import Account, ClientInfo, Identity, Version
from zengine.pipeline import Outcome, render_for
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import check_structure, plugin_list

SEED = ROOT / "tests" / "golden" / "seed-example.xml"
V114 = Version(1, 14)

EVERYTHING: dict[str, Any] = {
    "register_on_startup": True, "enable_push_notifications": True,
    "do_not_play_ringback_tones": True, "voicemail_check_extension": "*97",
    "voicemail_transfer_extension": "*98", "force_rfc3264": True, "use_kpml": True,
    "use_overlap_dialing": True, "use_custom_ringtone": True,
    "custom_ringtone_location": "file:///ring.wav", "use_custom_certificate": "location",
    "custom_certificate_location": "/c.pem", "custom_certificate": "PEM",
    "mwi_subscribe_usage": "both", "use_number_rewriting": True,
    "number_rewriting_country": "auto-detect", "number_rewriting_prefix": "+",
    "use_strip_dial_chars": True, "strip_dial_chars": " .-()[]{}",
    "token_url": "https://t.example/?id=", "balance_url": "https://b.example/${USERNAME}",
    "rate_url": "https://r.example/${DESTINATION}",
    "quality_rating_url": "https://q.example/${CALL_IDENTIFIER}/${RATING}",
    "protocol": "SIP", "reregistration_mode": "custom", "reregistration_time": 600,
    "resubscription_mode": "custom", "resubscription_time": 1800,
    "SIP_use_rport": False, "SIP_use_rport_media": False, "SIP_srtp_mode": "SDES",
    "SIP_dtmf_style": "rfc_2833", "SIP_use_blf": True, "SIP_publish_presence": True,
    "SIP_subscribe_presence": True, "SIP_keep_alive_mode": "custom",
    "SIP_keep_alive_timeout": 90, "SIP_use_preconditions": False, "SIP_use_reg_event": False,
    "stun": {"use_stun": "custom", "stun_host": "stun.example", "stun_port": 3478,
             "stun_refresh_period": 40},
    "IAX2_host": "iax.example", "IAX2_context": "default", "IAX2_callerId": "Ann",
    "IAX2_callerNumber": "100", "IAX2_dtmf_style": "outband",
    "enable_file_transfer": True, "enabled_video_fmtp": True,
    "msrp": {"enabled": True, "force_msrp_for_chat": False, "enable_tls": True,
             "enable_relay": True, "relay_uri": "msrp://relay", "relay_username": "r",
             "relay_password": "rp"},
    "sms": {"enabled": True, "enable_sms_center": True, "sms_center_uri": "sip:sms@x"},
    "codecs": [{"codec": "ilbc30", "bps": 0, "dtx": False, "vbr": False}],
    "zrtp": {"enabled": False, "hash_algorithms": ["S256"], "cipher_algorithms": ["AES1"],
             "auth_tags": ["HS80"], "key_agreement_methods": ["DH2K"],
             "sas_encodings": ["B256"]},
}
DOCUMENT = {"customer_sid": "855", "prov_id": "da98", "prov_name": "test555",
            "diagnostics": {"enable_debug_log": False, "enable_extra_dmp": False,
                            "enable_audio_debug": False},
            "breakpad": {"enabled": True, "upload_dumps": True, "ask_user_for_upload": True}}


class Source:
    @hookimpl
    def zengine_load_accounts(self) -> list[Account]:
        return [Account(ident="a", sip_username="u", sip_password=SecretStr("p"),
                        domain="d.example", name="A", auth_username="au", caller_id="C",
                        outbound_proxy="proxy", transport="udp", token=SecretStr("tok"))]


def render_everything() -> bytes:
    settings = settings_from_mapping({"defaults": EVERYTHING, "document": DOCUMENT}, environ={})
    runtime = build_runtime(settings, load_entrypoints=False,
                            plugins=[*plugin_list("zoiper", "urls"), ("src", Source())])
    runtime.start()
    return render_for(Identity("u", "t"), ClientInfo("mobile", V114, "1.14"), runtime, Outcome())


def tag_paths(root: etree._Element) -> list[str]:
    paths = []
    for element in root.iter(etree.Element):
        paths.append("/".join(a.tag for a in reversed(list(element.iterancestors())))
                     + "/" + element.tag)
    return paths


def test_every_seed_element_in_seed_order_and_nesting() -> None:
    seed = etree.parse(str(SEED), etree.XMLParser(remove_comments=True)).getroot()
    ours = etree.fromstring(render_everything())
    # Our one deliberate difference: the seed's typo, see docs/clients.md.
    expected = [p.replace("custom_certicate_location", "custom_certificate_location")
                for p in tag_paths(seed)]
    assert tag_paths(ours) == expected


def test_everything_document_is_valid_against_the_catalogue() -> None:
    assert check_structure(render_everything(), "mobile", V114) == []


def test_golden_documents_are_valid_against_the_catalogue() -> None:
    for name in ("alice-1.14.xml", "bob-1.14.xml"):
        body = (ROOT / "tests" / "golden" / "mobile" / name).read_bytes()
        assert check_structure(body, "mobile", V114) == [], name


def test_structure_check_catches_bad_documents() -> None:
    good = render_everything()
    bad_enum = good.replace(b"<SIP_srtp_mode>SDES<", b"<SIP_srtp_mode>ZRTP<")
    bad_bool = good.replace(b"<use_kpml>true<", b"<use_kpml>1<")
    unknown = good.replace(b"<use_kpml>", b"<use_kmpl>").replace(b"</use_kpml>", b"</use_kmpl>")
    assert any("SIP_srtp_mode" in p for p in check_structure(bad_enum, "mobile", V114))
    assert any("use_kpml" in p for p in check_structure(bad_bool, "mobile", V114))
    assert any("use_kmpl" in p for p in check_structure(unknown, "mobile", V114))
