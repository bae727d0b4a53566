"""Config values validated against the catalogue; emitted forms as the seed writes them."""

from __future__ import annotations

from typing import Any

import pytest

from zengine import catalog
from zengine.errors import ConfigError
from zengine.settings import settings_from_mapping


def test_enum_any_case_emitted_as_seed_writes_it() -> None:
    values = catalog.validate_fields({"SIP_transport_type": "tls", "SIP_srtp_mode": "sdes",
                                      "protocol": "sip", "SIP_dtmf_style": "RFC_2833"}, "t")
    assert values == {"SIP_transport_type": "TLS", "SIP_srtp_mode": "SDES", "protocol": "SIP",
                      "SIP_dtmf_style": "rfc_2833"}


def test_documented_synonyms_and_seed_typos_accepted() -> None:
    values = catalog.validate_fields({"SIP_dtmf_style": "outband",
                                      "custom_certicate_location": "/x"}, "t")
    assert values == {"SIP_dtmf_style": "rfc_2833", "custom_certificate_location": "/x"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"SIP_transport_type": "SCTP"},
         "field 'SIP_transport_type' has invalid value 'SCTP'; allowed: UDP, TCP, TLS"),
        ({"register_on_startup": "maybe"},
         "field 'register_on_startup' has invalid value 'maybe'; allowed: true, false"),
        ({"reregistration_time": -5}, "allowed: an unsigned integer"),
        ({"sip_transport_type": "UDP"},
         "unknown field 'sip_transport_type' (did you mean 'SIP_transport_type'?)"),
        ({"stun": {"use_stun": "always"}}, "field 'stun/use_stun' has invalid value 'always'"),
        ({"codecs": ["opus_wide", "speex9000"]}, "field 'codecs[2]' has invalid value 'speex9000'"),
        ({"codecs": ["g722", 7]}, "codec 'g722' is listed twice"),
        ({"codecs": [{"codec": "g722", "loud": True}]}, "unknown keys ['loud']"),
        ({"name": "bell\x07"}, "contains the character U+0007"),
        ({"zrtp": {"hash_algorithms": ["N256"]}}, "allowed: S256, S384"),
        ({"password": "x"}, "field 'password' is set per account"),
    ],
)
def test_config_errors_name_field_value_and_allowed(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        catalog.validate_fields(table, "zengine.toml [defaults]", forbid=catalog.ACCOUNT_OWNED)
    assert message in str(info.value)
    assert str(info.value).startswith("zengine.toml [defaults]")


def test_codecs_by_name_or_id_priority_follows_order() -> None:
    codecs = catalog.coerce_codecs(["Opus Wide", 0, {"codec": "G.722", "enabled": False,
                                                     "bps": 64000, "dtx": True}], "t")
    assert [(c.codec.id, c.priority, c.enabled) for c in codecs] == [
        (35, 1, True), (0, 2, True), (7, 3, False)]
    assert codecs[2].bps == 64000 and codecs[2].dtx is True


def test_zrtp_names_to_documented_ids() -> None:
    zrtp = catalog.coerce_zrtp({"enabled": True, "key_agreement_methods": ["dh2k", "ec25"],
                                "cipher_algorithms": ["AES51"]}, "t")
    lists = dict(zrtp.lists)
    assert [(i.name, i.id, i.priority) for i in lists["key_agreement_methods"]] == [
        ("DH2K", 1, 0), ("EC25", 2, 1)]
    assert [(i.name, i.id) for i in lists["cipher_algorithms"]] == [("AES1", 0)]


def test_profiles_and_default_profile_validated_at_load() -> None:
    with pytest.raises(ConfigError, match=r"\[profiles.tls\]: field 'SIP_srtp_mode'"):
        settings_from_mapping({"profiles": {"tls": {"SIP_srtp_mode": "zrtp"}}}, environ={})
    with pytest.raises(ConfigError, match="default_profile 'nope' is not a profile"):
        settings_from_mapping({"default_profile": "nope"}, environ={})


def test_unknown_settings_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"\[server\]: unknown key 'prot'"):
        settings_from_mapping({"server": {"prot": 1}}, environ={})
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        settings_from_mapping({"srever": {}}, environ={})


def test_environment_overrides_config() -> None:
    settings = settings_from_mapping({"server": {"port": 1}},
                                     environ={"ZENGINE_SERVER__PORT": "9000",
                                              "ZENGINE_LOGGING__FORMAT": "console",
                                              "ZENGINE_SERVER__PATHS": '["/p"]'})
    assert settings.server.port == 9000
    assert settings.logging.format == "console"
    assert settings.server.paths == ("/p",)


def test_catalogue_paths_unique_and_since_versions_ordered() -> None:
    paths = [f.path for f in catalog.ACCOUNT_FIELDS]
    assert len(paths) == len(set(paths))
    for field in catalog.ACCOUNT_FIELDS:
        for first, old in field.old_names:
            assert field.name_for(catalog.V("1.13")) == old
            assert field.name_for(first) == field.name


def test_secret_environment_values_taken_verbatim() -> None:
    from zengine.settings import _overlay_env

    data: dict[str, Any] = {}
    _overlay_env(data, {"ZENGINE_PLUGINS__LDAP__SERVICE_PASSWORD": '"123"',
                        "ZENGINE_PLUGINS__SQL__URL": "sqlite:///x",
                        "ZENGINE_SERVER__PORT": "81"})
    assert data == {"plugins": {"ldap": {"service_password": '"123"'},
                                "sql": {"url": "sqlite:///x"}},
                    "server": {"port": 81}}


def test_model_level_validation_error_does_not_print_the_table() -> None:
    from pydantic import BaseModel, SecretStr, ValidationError, model_validator

    from zengine.settings import format_validation_error

    class M(BaseModel):
        password: SecretStr

        @model_validator(mode="after")
        def _fail(self) -> M:
            raise ValueError("bad combination")

    with pytest.raises(ValidationError) as info:
        M.model_validate({"password": "hunter2"})
    text = format_validation_error(info.value, "t")
    assert "bad combination" in text and "hunter2" not in text


@pytest.mark.parametrize(
    ("table", "secret"),
    [
        ({"plugins": {"x": {"url": ["postgresql://u:S3CRETURL@h/x"]}}}, "S3CRETURL"),
        ({"plugins": {"x": {"encryption_keys": "K3YMATERIAL"}}}, "K3YMATERIAL"),
        ({"plugins": {"x": {"servers": ["ldap://svc:LDAPS3CRET@h"]}}}, "LDAPS3CRET"),
    ],
)
def test_config_errors_never_echo_secrets(table: dict[str, Any], secret: str) -> None:
    from pydantic import BaseModel, ConfigDict

    from zengine.settings import format_validation_error

    class X(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str | None = None
        encryption_keys: dict[str, str] | None = None
        servers: list[int] | None = None

    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        X.model_validate(table["plugins"]["x"])
    assert secret not in format_validation_error(info.value, "t")


def test_secret_catalogue_fields_are_masked_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        catalog.validate_fields({"msrp": {"relay_password": ["MSRPS3CRET"]}}, "t")
    assert "MSRPS3CRET" not in str(info.value) and "<secret>" in str(info.value)
