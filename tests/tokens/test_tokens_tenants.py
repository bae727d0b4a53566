"""Tokens and tenants: a token issued for one tenant's user is redeemed with that tenant's
users and accounts, never with the global runtime's user of the same name and account ident.

The global users file here holds an alice whose account has the same ident as acme's alice's:
before tokens carried their runtime's tenant, redeeming acme alice's token through the global
runtime answered the global alice's SIP password.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.conftest import BUILTINS, runtime_of
from tests.tenants_kit import FAST, HOSTS, PASSWORDS, SIP_SECRET, config
from zengine.app import create_app
from zengine.cli import main
from zengine.errors import ConfigError
from zengine.passwords import Passwords
from zengine.runtime import build_runtime
from zengine.settings import load_settings
from zengine.testing import plugin_list
from zengine_admin import service
from zengine_admin.models import TokenIssue
from zengine_admin.service import Actor
from zengine_tokens.api import token_service

GLOBAL_SECRET = "GlobalAliceSipSecret7"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    hashed = Passwords(FAST).hash("global-pass")
    users = tmp_path / "global-users.toml"
    # Same username and the same account ident as acme's alice: only the tenant differs.
    users.write_text(f"""
[users.alice]
password_hash = "{hashed}"
[[users.alice.accounts]]
ident = "acme-1"
sip_username = "global-sip-alice"
sip_password = "{GLOBAL_SECRET}"
domain = "sip.global.example"
""", encoding="utf-8")
    users.chmod(0o600)
    path = config(tmp_path, default="globex", extra="""
[plugins.static]
users_file = "global-users.toml"
[plugins.tokens]
issue_in_documents = true
token_url = "https://prov.example.net/token?id="
sqlite_path = "tokens.db"
[plugins.admin]
sqlite_path = "keys.db"
""")
    settings = load_settings(path, environ={})
    app = create_app(settings, load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS, "tokens", "admin"))
    with TestClient(app) as test_client:
        yield test_client


def _redeemed_password(client: TestClient, token: str) -> str | None:
    reply = client.get("/token", params={"id": token})
    assert reply.status_code == 200, reply.text
    return etree.fromstring(reply.content).findtext("accounts/account/password")


def test_a_document_token_redeems_its_own_tenants_account(client: TestClient) -> None:
    reply = client.get("/id.php", params={"username": "alice", "password": PASSWORDS["acme"],
                                          "version": "1.14"},
                       headers={"host": HOSTS["acme"]})
    assert reply.status_code == 200, reply.text
    token = etree.fromstring(reply.content).findtext("accounts/account/token") or ""
    assert len(token) == 43
    assert _redeemed_password(client, token) == SIP_SECRET["acme"]
    acme = runtime_of(client).for_tenant("acme")
    assert acme is not None
    assert [info.tenant for info in token_service(acme).list("alice", tenant="acme")] \
        == ["acme"]


def test_an_admin_token_for_a_tenant_user_redeems_that_users_account(
        client: TestClient) -> None:
    runtime = runtime_of(client)
    actor = Actor(name="helpdesk", scope="write", tenant="acme", client_addr="192.0.2.1")
    issued = service.issue_token(runtime, actor, TokenIssue(username="alice"))
    assert _redeemed_password(client, issued.token) == SIP_SECRET["acme"]
    # The acme-bound actor lists and revokes it: it is acme's token.
    page = service.list_tokens(runtime, actor)
    assert [item.id for item in page.items] == [issued.id]
    assert service.revoke_token(runtime, actor, issued.id).revoked


def test_a_global_token_still_redeems_the_global_user(client: TestClient) -> None:
    runtime = runtime_of(client)
    issued = token_service(runtime).issue("alice", actor="test")
    assert _redeemed_password(client, issued.token) == GLOBAL_SECRET


def test_a_tenant_with_its_own_token_store_has_its_tokens_redeemed(tmp_path: Path) -> None:
    """[tenants.acme.plugins.tokens] sqlite_path (or acme's own SQL database): acme's tokens
    live there, and the one endpoint must find them (it asked the global store only)."""
    path = config(tmp_path, extra="""
[plugins.tokens]
issue_in_documents = true
token_url = "https://prov.example.net/token?id="
sqlite_path = "tokens.db"
[tenants.acme.plugins.tokens]
sqlite_path = "acme-tokens.db"
""")
    app = create_app(load_settings(path, environ={}), load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS, "tokens"))
    with TestClient(app) as client:
        tokens = {}
        for tenant in ("acme", "globex"):
            reply = client.get("/id.php", params={"username": "alice", "version": "1.14",
                                                  "password": PASSWORDS[tenant]},
                               headers={"host": HOSTS[tenant]})
            tokens[tenant] = etree.fromstring(reply.content).findtext(
                "accounts/account/token") or ""
        assert (tmp_path / "acme-tokens.db").exists()
        for tenant, token in tokens.items():
            assert _redeemed_password(client, token) == SIP_SECRET[tenant]


def test_the_tokens_cli_uses_the_tenants_users_and_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``zengine tokens issue|list|revoke --tenant acme`` checks acme's users (it asked the
    global runtime: "No backend knows user" for a user only acme has) and acme's store."""
    path = config(tmp_path, extra="""
[plugins.tokens]
sqlite_path = "tokens.db"
[tenants.acme.plugins.tokens]
sqlite_path = "acme-tokens.db"
""")
    # No global users file: alice exists only in the tenants' users files.
    code = main(["tokens", "issue", "alice", "--tenant", "acme", "--no-qr", "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "user:    alice" in out
    assert (tmp_path / "acme-tokens.db").exists()
    assert main(["tokens", "list", "--tenant", "acme", "--json", "-c", str(path)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["user"] == "alice" and row["tenant"] == "acme" and row["state"] == "active"
    assert main(["tokens", "revoke", "--user", "alice", "--tenant", "acme",
                 "-c", str(path)]) == 0
    assert "revoked 1 token(s) of alice" in capsys.readouterr().out
    # The global runtime still does not know alice, and an unknown tenant is named.
    assert main(["tokens", "issue", "alice", "--no-qr", "-c", str(path)]) == 1
    assert "No backend knows user 'alice'" in capsys.readouterr().err
    assert main(["tokens", "list", "--tenant", "nosuch", "-c", str(path)]) != 0
    assert "no tenant 'nosuch'" in capsys.readouterr().err


def test_admin_users_of_a_configured_tenant_name_that_tenant(client: TestClient) -> None:
    """``GET /api/v1/users?tenant=acme`` answered ``"tenant": null`` for acme's users (acme's
    users file has no ``tenant`` of its own): they are acme's."""
    runtime = runtime_of(client)
    for actor in (Actor(name="ops", scope="read", tenant=None, client_addr="192.0.2.1",
                        target="acme"),
                  Actor(name="helpdesk", scope="read", tenant="acme", client_addr="192.0.2.1")):
        page = service.find_users(runtime, actor)
        assert [(u.username, u.tenant) for u in page.items] == [("alice", "acme")]
        assert service.find_users(runtime, actor, "alice").items[0].tenant == "acme"
        assert service.user_detail(runtime, actor, "alice").tenant == "acme"
    everyone = Actor(name="ops", scope="read", tenant=None, client_addr="192.0.2.1")
    assert [u.tenant for u in service.find_users(runtime, everyone).items] == [None]


def _days_ago(clock: Callable[[], datetime], days: int) -> Callable[[], datetime]:
    return lambda: clock() - timedelta(days=days)


def test_tokens_purge_with_a_tenant_deletes_only_that_tenants_expired_tokens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``zengine tokens purge --tenant T`` on the real SQLite stores: acme has a store of its
    own, globex shares the global one. Each purge deletes the expired tokens of its tenant
    and nothing else; the live ones and other tenants' expired ones stay."""
    hashed = Passwords(FAST).hash("global-pass")
    (tmp_path / "global-users.toml").write_text(f"""
[users.alice]
password_hash = "{hashed}"
[[users.alice.accounts]]
ident = "g-1"
sip_username = "global-sip-alice"
sip_password = "{GLOBAL_SECRET}"
domain = "sip.global.example"
""", encoding="utf-8")
    (tmp_path / "global-users.toml").chmod(0o600)
    path = config(tmp_path, extra="""
[plugins.static]
users_file = "global-users.toml"
[plugins.tokens]
sqlite_path = "tokens.db"
[tenants.acme.plugins.tokens]
sqlite_path = "acme-tokens.db"
""")
    runtime = build_runtime(load_settings(path, environ={}), load_entrypoints=False,
                            plugins=plugin_list(*BUILTINS, "tokens"))
    runtime.start()
    live: dict[str, str] = {}
    try:
        for tenant in ("", "acme", "globex"):
            served = runtime.for_tenant(tenant)
            assert served is not None
            tokens = token_service(served)
            real = tokens.clock
            tokens.clock = _days_ago(real, 30)
            tokens.issue("alice", tenant=tenant, ttl=timedelta(hours=1), revoke_older=False,
                         actor="test")
            tokens.clock = real
            live[tenant] = tokens.issue("alice", tenant=tenant, revoke_older=False,
                                        actor="test").id
    finally:
        runtime.stop()
    capsys.readouterr()  # the in-process runtime's log lines

    def states(tenant: str) -> list[str]:
        argv = ["tokens", "list", "--json", "-c", str(path)]
        assert main([*argv, "--tenant", tenant] if tenant else argv) == 0
        return sorted(json.loads(line)["state"] for line in capsys.readouterr().out.splitlines())

    def purge(tenant: str) -> str:
        argv = ["tokens", "purge", "-c", str(path)]
        assert main([*argv, "--tenant", tenant] if tenant else argv) == 0
        return capsys.readouterr().out

    assert {t: states(t) for t in live} == {t: ["active", "expired"] for t in live}
    # globex shares the global store: its purge must leave the global tenant's row alone.
    assert purge("globex") == "purged 1 expired token(s) of tenant 'globex'\n"
    assert states("globex") == ["active"]
    assert states("") == ["active", "expired"] and states("acme") == ["active", "expired"]
    assert purge("globex") == "purged 0 expired token(s) of tenant 'globex'\n"
    assert purge("acme") == "purged 1 expired token(s) of tenant 'acme'\n"
    assert purge("") == "purged 1 expired token(s)\n"
    assert {t: states(t) for t in live} == {t: ["active"] for t in live}
    assert main(["tokens", "purge", "--tenant", "nosuch", "-c", str(path)]) == 2
    assert "no tenant 'nosuch'" in capsys.readouterr().err
    # Rows of a tenant removed from the config stay in the shared store: --tenant refuses an
    # unknown tenant, --all-tenants purges every store's expired rows, whatever the tenant.
    runtime = build_runtime(load_settings(path, environ={}), load_entrypoints=False,
                            plugins=plugin_list(*BUILTINS, "tokens"))
    runtime.start()
    try:
        for tenant in ("gone", "acme"):
            tokens = token_service(runtime.for_tenant(tenant) or runtime)  # gone: global
            real = tokens.clock
            tokens.clock = _days_ago(real, 30)
            tokens.issue("alice", tenant=tenant, ttl=timedelta(hours=1), revoke_older=False,
                         actor="test")
            tokens.clock = real
    finally:
        runtime.stop()
    capsys.readouterr()
    assert main(["tokens", "purge", "--tenant", "gone", "-c", str(path)]) == 2
    assert main(["tokens", "purge", "--all-tenants", "--tenant", "acme", "-c", str(path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["tokens", "purge", "--all-tenants", "-c", str(path)]) == 0
    assert capsys.readouterr().out.endswith("purged 2 expired token(s) of every tenant\n")
    assert {t: states(t) for t in live} == {t: ["active"] for t in live}


@pytest.mark.parametrize("line", ['path = "/acme-token"', 'param = "tok"',
                                  "refused_status = 404"])
def test_what_the_one_token_endpoint_shares_is_refused_in_a_tenant_table(
        tmp_path: Path, line: str) -> None:
    """One endpoint, at the global path and parameter, serves every tenant: a tenant's own
    ``path`` or ``param`` made its documents and links carry a token URL nothing answered
    (``/acme-token?tok=`` got a 404), and its ``refused_status`` was never used (a refusal is
    answered before the token's tenant is known). Refused at startup, naming the key."""
    path = config(tmp_path, extra=f"""
[plugins.tokens]
sqlite_path = "tokens.db"
[tenants.acme.plugins.tokens]
{line}
""")
    runtime = build_runtime(load_settings(path, environ={}), load_entrypoints=False,
                            plugins=plugin_list(*BUILTINS, "tokens"))
    with pytest.raises(ConfigError, match=rf"tenants\.acme.*{line.split()[0]}.*differ"):
        runtime.start()


def test_a_tenant_may_keep_the_global_token_endpoint_values(tmp_path: Path) -> None:
    path = config(tmp_path, extra="""
[plugins.tokens]
sqlite_path = "tokens.db"
path = "/zt"
[tenants.acme.plugins.tokens]
sqlite_path = "acme-tokens.db"
path = "/zt"
""")
    runtime = build_runtime(load_settings(path, environ={}), load_entrypoints=False,
                            plugins=plugin_list(*BUILTINS, "tokens"))
    runtime.start()
    runtime.stop()


def test_a_tenants_own_reply_setting_shapes_its_tokens_answer(tmp_path: Path) -> None:
    """``[tenants.acme.plugins.tokens] reply = "full"``: acme's tokens answer acme's whole
    document; the endpoint answered every tenant's token with the global ``credentials``."""
    path = config(tmp_path, extra="""
[plugins.tokens]
sqlite_path = "tokens.db"
[tenants.acme.plugins.tokens]
reply = "full"
""")
    app = create_app(load_settings(path, environ={}), load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS, "tokens"))
    with TestClient(app) as client:
        answers = {}
        for tenant in ("acme", "globex"):
            served = runtime_of(client).for_tenant(tenant)
            assert served is not None
            issued = token_service(served).issue("alice", tenant=tenant, actor="test")
            reply = client.get("/token", params={"id": issued.token})
            assert reply.status_code == 200, reply.text
            answers[tenant] = etree.fromstring(reply.content)
    assert answers["acme"].findtext("accounts/account/SIP_domain") == "sip.acme.example"
    assert answers["acme"].findtext("accounts/account/password") == SIP_SECRET["acme"]
    assert answers["globex"].find("accounts/account/SIP_domain") is None
    assert answers["globex"].findtext("accounts/account/password") == SIP_SECRET["globex"]
