"""Fixtures for the client-family tests: a config that sets every versioned field, a users file
with a TLS, an IPv6 and an IAX2 account, and the app serving them through the real plugins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from zengine import testing
from zengine.app import create_app
from zengine.passwords import hash_password
from zengine.settings import Settings, settings_from_mapping
from zengine_zoiper import checks

# The lead's zengine.testing checks mobile documents; the legacy and desktop checkers live
# with the plugin that knows those formats.
for _family, _checker in checks.CHECKERS.items():
    testing.STRUCTURE_CHECKERS.setdefault(_family, _checker)

PASSWORD = "wonderland"
GOLDEN = Path(__file__).resolve().parent.parent / "golden"

USERS = """
[users.alice]
password_hash = "{hash}"
profile = "full"
display_name = "Alice Liddell"
tenant = "wonderland"

[[users.alice.accounts]]
ident = "alice-tls"
name = "Alice (TLS)"
sip_username = "1001"
sip_password = "Tea&Cakes<3"
domain = "sip.example.com:5061"
caller_id = "Alice Liddell"
token = "t-alice-6789"
transport = "TLS"

[[users.alice.accounts]]
ident = "alice-v6"
name = "Alice (IPv6 office)"
sip_username = "1002"
sip_password = "Down-the-rabbit-hole"
domain = "[2001:db8::10]:5070"
auth_username = "alice.office"
outbound_proxy = "proxy.example.com:5080"
profile = "office"
overrides = {{ codecs = ["g722", "alaw", "ulaw"], SIP_dtmf_style = "SIP_info_numeric" }}

[[users.alice.accounts]]
ident = "alice-iax"
name = "Alice (IAX2)"
sip_username = "1003"
sip_password = "cheshire"
domain = "iax.example.com"

[users.alice.accounts.overrides]
protocol = "IAX2"
IAX2_host = "iax.example.com:4570"
IAX2_context = "from-alice"
IAX2_callerId = "Alice IAX"
IAX2_callerNumber = "1003"
IAX2_dtmf_style = "inband"
"""


def config(users_file: Path, **extra: Any) -> dict[str, Any]:
    """A config that sets every field with a since-version, so each step has work to do."""
    data: dict[str, Any] = {
        "auth": {"chain": ["static"]},
        "plugins": {"static": {"users_file": str(users_file)}},
        "document": {
            "customer_sid": "855",
            "prov_name": "Example Telecom",
            "diagnostics": {"enable_debug_log": False, "enable_extra_dmp": False,
                            "enable_audio_debug": True},
            "breakpad": {"enabled": True, "upload_dumps": False},
        },
        "defaults": {
            "register_on_startup": True,
            "voicemail_check_extension": "*97",
            "voicemail_transfer_extension": "*98",
            "use_strip_dial_chars": True,
            "strip_dial_chars": " .-()[]{}",
            "balance_url": "https://billing.example.com/b?u=${USERNAME}&p=${PASSWORD}",
            "rate_url": "https://billing.example.com/r?d=${DESTINATION}&u={sip_username}",
            "quality_rating_url": "https://billing.example.com/q?c=${CALL_IDENTIFIER}"
                                  "&r=${RATING}",
            "SIP_use_preconditions": False,
            "SIP_use_reg_event": True,
            "enable_file_transfer": True,
            "enabled_video_fmtp": True,
            "rtcp_profile_type": "avpf",
            "msrp": {"enabled": True, "force_msrp_for_chat": False, "enable_tls": True,
                     "enable_relay": True, "relay_uri": "msrp://relay.example.com:2855",
                     "relay_username": "relay", "relay_password": "relay-secret"},
            "sms": {"enabled": False},
            "codecs": ["opus_wide", {"codec": "g729", "dtx": True}, "alaw"],
        },
        "profiles": {
            "full": {
                "SIP_transport_type": "TLS",
                "SIP_srtp_mode": "SDES",
                "enable_push_notifications": True,
                "token_url": "https://prov.example.com/token?tenant={tenant}&id=",
                "stun": {"use_stun": "custom", "stun_host": "stun.example.com",
                         "stun_port": 3478, "stun_refresh_period": 40},
                "reregistration_mode": "custom",
                "reregistration_time": 300,
                "codecs": [{"codec": "opus_wide", "bps": 24000, "vbr": True}, "g722", "alaw"],
                "zrtp": {"enabled": True, "hash_algorithms": ["S384", "S256"],
                         "cipher_algorithms": ["AES1"], "auth_tags": ["HS80", "HS32"],
                         "key_agreement_methods": ["EC25", "DH3K"],
                         "sas_encodings": ["B32"]},
                "contact_services": [{
                    "ident": "company-book", "name": "Company phone book", "type": "xml",
                    "uri": "https://book.example.com/contacts.xml?tenant=x&fmt=zoiper",
                    "auth_type": "basic", "username": "book", "password": "book-secret",
                    "account_mapping_type": "default", "hide_contacts_without_phone": False}],
            },
            "office": {"SIP_transport_type": "UDP", "stun": {"use_stun": "disabled"},
                       "SIP_use_rport_media": True,
                       "contact_services": [{
                           "ident": "office-ldap", "name": "Office directory", "type": "ldap",
                           "host": "ldap.example.com:389", "root": "ou=people,dc=example,dc=com",
                           "username": "cn=phonebook,dc=example,dc=com",
                           "password": "ro&<bind>", "use_start_tls": True, "limit": 200,
                           "attribute_mappings": {"display_name": "cn",
                                                  "work_phone": "telephoneNumber"}}]},
        },
    }
    data.update(extra)
    return data


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clients") / "users.toml"
    path.write_text(USERS.format(hash=hash_password(PASSWORD)), encoding="utf-8")
    return path


def make_settings(users_file: Path, **extra: Any) -> Settings:
    return settings_from_mapping(config(users_file, **extra), environ={},
                                 source="clients-test.toml")


@pytest.fixture(scope="session")
def settings(users_file: Path) -> Settings:
    return make_settings(users_file)


def open_client(settings: Settings, *extra_plugins: tuple[str, object]) -> TestClient:
    plugins = [*testing.plugin_list("zoiper", "static", "urls"), *extra_plugins]
    return TestClient(create_app(settings, load_entrypoints=False, plugins=plugins))


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    with open_client(settings) as test_client:
        yield test_client


def users_toml_config(users_file: Path) -> str:
    """The test config as a TOML file, for the command line.

    The command line loads every installed entry point; the database and directory backends
    are not what these tests are about, so they are disabled (blocked before they load).
    """
    import json

    # JSON values are valid TOML inline values for the types used here (str, bool, int, list,
    # table), so the file is written without a TOML writer dependency.
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {value(x)}' for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    data = config(users_file)
    data["plugins"] = {**data["plugins"], "disabled": ["sql", "ldap"]}
    lines = []
    for table, body in data.items():
        lines.append(f"{table} = {value(body)}")
    return "\n".join(lines) + "\n"
