"""URL templating: server fields expanded and URL-encoded; Zoiper placeholders untouched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from zengine.errors import ConfigError
from zengine.runtime import build_runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_urls.template import TemplateError, parse


def test_expansion_encodes_server_values_and_keeps_zoiper_placeholders() -> None:
    template = parse("https://b.example/x?u={sip_username}&p=${PASSWORD}&c=${CURRENCY}&t={tenant}")
    out = template.expand({"sip_username": "a b&c=d/é", "tenant": None})
    assert out == "https://b.example/x?u=a%20b%26c%3Dd%2F%C3%A9&p=${PASSWORD}&c=${CURRENCY}&t="


def test_literal_braces() -> None:
    assert parse("x{{y}}z").expand({}) == "x{y}z"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("?u=${username}", "unknown Zoiper placeholder ${username}"),
        ("?u={password}", "unknown server field {password}"),
        ("?u={sip_username", "unmatched '{'"),
        ("?u=}", "unmatched '}'"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("$", r"\$").replace("{", r"\{")
                       .replace("}", r"\}")):
        parse(template)


def test_bad_template_in_profile_refuses_startup() -> None:
    settings = settings_from_mapping(
        {"profiles": {"p": {"balance_url": "https://x/?u=${username}"}}}, environ={})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=plugin_list("urls"))
    with pytest.raises(ConfigError, match=r"\[profiles.p\]: balance_url: unknown Zoiper"):
        runtime.start()


@given(st.text(max_size=30))
def test_any_value_expands_to_one_url_component(value: str) -> None:
    out = parse("https://x/?a={sip_username}&b=1").expand({"sip_username": value})
    query = out.split("?", 1)[1]
    assert query.count("&") == 1 and query.endswith("&b=1")


def test_example_alice_urls(example_client: TestClient) -> None:
    body = example_client.get("/id.php", params={"u": "alice", "p": "wonderland",
                                                 "v": "1.14"}).text
    assert "<token_url>https://prov.example.com/token?tenant=wonderland&amp;id=</token_url>" in body
    # {sip_username} is filled by zengine; ${USERNAME} and friends are left for the phone.
    assert ("<rate_url>https://billing.example.com/rate?user=1001&amp;"
            "to=${DESTINATION}&amp;currency=${CURRENCY}</rate_url>") in body
    assert ("<balance_url>https://billing.example.com/balance?user=${USERNAME}&amp;"
            "password=${PASSWORD}&amp;currency=${CURRENCY}</balance_url>") in body
