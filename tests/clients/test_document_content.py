"""What goes into a document: both spellings for 1.5-1.13, only configured values, URL-safe
tokens, and the check-config warnings on balance_url and rate_url."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.clients.conftest import PASSWORD, make_settings, open_client
from zengine import catalog, cli
from zengine.errors import ConfigError
from zengine.models import Version
from zengine.passwords import hash_password
from zengine.settings import Settings, settings_from_mapping
from zengine.testing import check_structure

ALICE = {"username": "alice", "password": PASSWORD}
TWINS = {"SIP_callerId": "SIP_callerid", "IAX2_callerId": "IAX2_callerid",
         "voicemail_transfer_extension": "voicemaile_transfer_extension"}


def _accounts(body: bytes) -> list[etree._Element]:
    return etree.fromstring(body).findall("accounts/account")


@pytest.mark.parametrize("version", ["1.5", "1.8", "1.12", "1.13"])
def test_older_clients_get_both_spellings(client: TestClient, version: str) -> None:
    body = client.get("/id.php", params={**ALICE, "version": version}).content
    assert check_structure(body, "mobile", Version.parse(version)) == []
    seen = set()
    for account in _accounts(body):
        tags = [child.tag for child in account]
        for new, old in TWINS.items():
            if new not in tags:
                continue
            seen.add(new)
            # The old spelling right after the new one, with the same text.
            assert tags.index(old) == tags.index(new) + 1
            assert account.findtext(old) == account.findtext(new)
    assert seen == set(TWINS)  # the fixture sets all three somewhere


def test_1_8_keeps_the_dated_msrp_renames_only_old(client: TestClient) -> None:
    body = client.get("/id.php", params={**ALICE, "version": "1.8"}).content
    msrp = _accounts(body)[0].find("msrp")
    assert msrp is not None
    tags = [child.tag for child in msrp]
    assert "enable_msrp" in tags and "enabled" not in tags
    assert "enable_msrp_relay" in tags and "enable_relay" not in tags


def test_1_14_gets_only_the_new_spellings(client: TestClient) -> None:
    body = client.get("/id.php", params={**ALICE, "version": "1.14"}).content
    for old in TWINS.values():
        assert f"<{old}>".encode() not in body


def test_the_checker_refuses_an_old_spelling_at_1_14(client: TestClient) -> None:
    body = client.get("/id.php", params={**ALICE, "version": "1.12"}).content
    assert check_structure(body, "mobile", Version(1, 14)) != []


# --- send only what the operator set -------------------------------------------------------

UNSET_DEFAULTS = ("enable_push_notifications", "do_not_play_ringback_tones", "use_kpml",
                  "SIP_use_blf", "SIP_keep_alive_mode", "resubscription_mode")


@cache
def _bob_hash() -> str:
    return hash_password("builder")


def _bob_file(tmp_path: Path) -> Path:
    users = tmp_path / "users.toml"
    users.write_text(f"""
[users.bob]
password_hash = "{_bob_hash()}"
[[users.bob.accounts]]
ident = "bob-1"
sip_username = "2001"
sip_password = "sip-secret"
domain = "pbx.example.com"
""", encoding="utf-8")
    return users


def _bob_settings(tmp_path: Path, **document: object) -> Settings:
    return settings_from_mapping({"auth": {"chain": ["static"]},
                                  "plugins": {"static": {"users_file": str(_bob_file(tmp_path))}},
                                  "document": document}, environ={})


def test_defaults_nobody_configured_are_not_sent(tmp_path: Path) -> None:
    with open_client(_bob_settings(tmp_path)) as client:
        body = client.get("/id.php", params={"u": "bob", "p": "builder", "v": "1.14"}).content
    (account,) = _accounts(body)
    tags = {child.tag for child in account}
    for name in UNSET_DEFAULTS:
        assert name not in tags, name
    assert etree.fromstring(body).find("diagnostics") is None
    # What the account needs is there: who it is, where and how it connects.
    assert {"ident", "name", "username", "password", "SIP_domain", "protocol",
            "SIP_transport_type", "SIP_use_outbound_proxy", "SIP_use_auth_username"} <= tags
    assert check_structure(body, "mobile", Version(1, 14)) == []


def test_send_defaults_keeps_the_old_behaviour(tmp_path: Path) -> None:
    with open_client(_bob_settings(tmp_path, send_defaults=True)) as client:
        body = client.get("/id.php", params={"u": "bob", "p": "builder", "v": "1.14"}).content
    (account,) = _accounts(body)
    assert account.findtext("enable_push_notifications") == "false"
    assert account.findtext("SIP_keep_alive_mode") == "default"
    assert etree.fromstring(body).findtext("diagnostics/enable_debug_log") == "false"


def test_a_configured_false_is_still_sent(users_file: Path) -> None:
    settings = make_settings(users_file, defaults={"enable_push_notifications": False})
    with open_client(settings) as client:
        body = client.get("/id.php", params={**ALICE, "version": "1.14"}).content
    # alice-v6 has no profile that turns push on: the configured false reaches it.
    values = [a.findtext("enable_push_notifications") for a in _accounts(body)]
    assert "false" in values


def test_send_defaults_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="send_defaults"):
        settings_from_mapping({"document": {"send_defaults": "yes"}}, environ={})


# --- tokens --------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["a b", "a&b=c", "t/1", "tök", "a+b", "a%20b", "a#b", "?x"])
def test_unsafe_tokens_are_refused_naming_the_field(tmp_path: Path, token: str) -> None:
    field = catalog.account_fields()["token"]
    with pytest.raises(ConfigError) as info:
        catalog.coerce(field, token, "users.toml [users.bob]")
    message = str(info.value)
    assert "'token'" in message and "A-Z a-z 0-9 - . _ ~" in message
    assert token not in message  # a token is a secret
    # The static users file is refused at load, not at the user's next provisioning.
    users = tmp_path / "users.toml"
    users.write_text(f"""
[users.bob]
password_hash = "{_bob_hash()}"
[[users.bob.accounts]]
ident = "bob-1"
sip_username = "2001"
sip_password = "x"
domain = "pbx.example.com"
token = {token!r}
""".replace("'", '"'), encoding="utf-8")
    settings = settings_from_mapping({"plugins": {"static": {"users_file": str(users)}}},
                                     environ={})
    # (The static plugin's own rule is the token endpoint's, stricter: A-Z a-z 0-9 - _.)
    with pytest.raises(ConfigError, match=r"token' = <secret>: .*token_url"), \
            open_client(settings):
        pass


@pytest.mark.parametrize("token", ["t-alice-6789", "A.b_c~d-0", ""])
def test_url_safe_tokens_pass(token: str) -> None:
    assert catalog.coerce(catalog.account_fields()["token"], token, "x") == token


# --- check-config warnings -----------------------------------------------------------------

def test_check_config_warns_on_balance_and_rate_urls_without_required_placeholders(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "zengine.toml"
    cfg.write_text("""
[plugins]
disabled = ["sql", "ldap"]
[defaults]
balance_url = "https://b.example.com/?u={sip_username}&p=${PASSWORD}"
[profiles.ok]
balance_url = "https://b.example.com/${USERNAME}/${PASSWORD}/${CURRENCY}"
rate_url = "https://r.example.com/?to=${DESTINATION}"
[profiles.bad]
rate_url = "https://r.example.com/?u=${USERNAME}"
""", encoding="utf-8")
    assert cli.main(["check-config", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, out
    assert "[defaults]: balance_url lacks ${USERNAME}" in warnings[0]
    assert "[profiles.bad]: rate_url lacks ${DESTINATION}" in warnings[1]
