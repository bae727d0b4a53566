"""``[plugins.http]`` mistakes are configuration errors that name the key and never echo a
secret; an unconfigured plugin is inert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import zengine_http
from zengine.api import ConfigError, Credentials, Identity, build_runtime, settings_from_mapping
from zengine_http.breaker import Breaker, BreakerOpen
from zengine_http.template import TemplateError, expand_url, fields_in

BASE = "https://crm.example.net"
LOGIN = {"url": f"{BASE}/api/login", "json": {"user": "{username}", "secret": "{password}"}}


def build(table: dict[str, Any], tmp_path: Path | None = None) -> Any:
    settings = settings_from_mapping({"plugins": {"http": table}}, environ={},
                                     base_dir=tmp_path)
    return build_runtime(settings, load_entrypoints=False, plugins=[("http", zengine_http)])


@pytest.mark.parametrize(("table", "message"), [
    ({"login": {**LOGIN, "url": f"{BASE}/login?p={{password}}"}},
     r"login.url.*\{password\} may only be sent in the login request's json or form body"),
    ({"login": {**LOGIN, "query": {"p": "{password}"}}}, r"login.query.p.*\{password\}"),
    ({"login": {"url": f"{BASE}/login", "json": {"user": "{username}"}}},
     r"must send \{password\}"),
    ({"login": {**LOGIN, "url": "http://crm.example.net/login"}}, "clear text"),
    ({"login": {**LOGIN, "url": "https://{username}.crm.example.net/login"}},
     "before the URL's path"),
    ({"login": {**LOGIN, "url": "ftp://crm.example.net/"}}, "http:// or https://"),
    ({"login": {**LOGIN, "url": "https://u:hunter2@crm.example.net/"}}, "never in the URL"),
    ({"login": {**LOGIN, "json": {"user": "{usrname}", "secret": "{password}"}}},
     r"unknown placeholder\(s\) \['usrname'\]"),
    ({"login": {**LOGIN, "json": {"user": "{username", "secret": "{password}"}}},
     "unmatched"),
    ({"login": {**LOGIN, "method": "GET"}}, "GET request carries no body"),
    ({"login": {**LOGIN, "form": {"a": "b"}}}, "json body or a form, not both"),
    ({"accounts": {"url": f"{BASE}/a/{{customer_id}}"}}, r"unknown placeholder.*customer_id"),
    ({"accounts": {"url": f"{BASE}/a", "fields": {"sip_username": "u", "sip_password": "p",
                                                  "colour": "c"}}}, "not account fields"),
    ({"accounts": {"url": f"{BASE}/a", "fields": {"sip_username": "u"}}},
     "must map sip_password"),
    ({"accounts": {"url": f"{BASE}/a", "fields": {"sip_username": "u", "sip_password": "p"}}},
     "accounts.domain.*required"),
    ({"headers": {"Authorization": "Bearer hunter2"}}, "never in headers"),
    ({"bearer_token": "hunter2", "bearer_token_file": "/x"}, "not both"),
    ({"basic_username": "z"}, "go together"),
    ({"bearer_token": "hunter2", "basic_username": "z", "basic_password": "hunter2"},
     "not both"),
    ({"login": LOGIN, "retries": 9}, "retries"),
    ({"login": LOGIN, "colour": "red"}, "unknown key 'colour'"),
])
def test_mistakes_name_the_key_and_hide_secrets(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        build(table)
    assert "hunter2" not in str(failure.value)


def test_secret_files_and_ca_file_are_read_at_startup(tmp_path: Path) -> None:
    runtime = build({"login": LOGIN, "bearer_token_file": "missing-token"}, tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read secret file .*missing-token"):
        runtime.start()
    runtime = build({"login": LOGIN, "ca_file": "missing-ca.pem"}, tmp_path)
    with pytest.raises(ConfigError, match=r"ca_file .*missing-ca\.pem: cannot load"):
        runtime.start()


def test_unconfigured_plugin_is_inert() -> None:
    from pydantic import SecretStr

    runtime = build({})
    runtime.start()
    try:
        assert runtime.state["http"] is None
        credentials = Credentials("alice", SecretStr("pw"))
        assert zengine_http.zengine_authenticate(credentials, runtime) is None
        assert zengine_http.zengine_find_identity("alice", runtime) is None
        assert zengine_http.zengine_load_accounts(Identity("alice", "http"), runtime) is None
    finally:
        runtime.stop()


def test_url_templates_encode_every_reserved_character() -> None:
    assert fields_in("{a}/{{lit}}/{b}") == {"a", "b"}
    assert expand_url("/u/{x}", {"x": "a/b?c#d&e=f g%"}) == "/u/a%2Fb%3Fc%23d%26e%3Df%20g%25"
    assert expand_url("/u/{x}", {"x": "."}) == "/u/%2E"
    assert expand_url("/u/{x}/{{y}}", {"x": "..x"}) == "/u/..x/{y}"
    with pytest.raises(TemplateError, match="unmatched"):
        fields_in("/u/{x")


def test_breaker_lets_one_trial_through_after_the_reset_time() -> None:
    now = [0.0]
    breaker = Breaker(failures=2, reset=10, clock=lambda: now[0])
    assert breaker.before() is False
    assert breaker.failed(False) is False
    assert breaker.failed(False) is True
    with pytest.raises(BreakerOpen):
        breaker.before()
    now[0] = 10.0
    assert breaker.before() is True          # the trial
    with pytest.raises(BreakerOpen):
        breaker.before()                     # only one at a time
    assert breaker.failed(True) is True      # trial failed: open for another 10 s
    now[0] = 15.0
    with pytest.raises(BreakerOpen):
        breaker.before()
    now[0] = 20.0
    trial = breaker.before()
    breaker.succeeded(trial)
    assert breaker.state == "closed" and breaker.before() is False
