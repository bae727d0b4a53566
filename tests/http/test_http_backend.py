"""The HTTP/JSON backend against a real CRM (Starlette under hypercorn, TLS with a test CA):
logins, accounts, encodings, and how zengine answers when the service misbehaves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.http.conftest import config, http_table
from tests.http.crm import SIP_SECRET, Crm, Running
from zengine.api import Identity
from zengine.testkit import ClientFactory, DocumentCheck, RuntimeFactory

PLUGINS = ["zoiper", "urls", "http"]
ALICE = {"u": "alice", "p": "wonderland", "v": "1.14"}


@pytest.fixture
def table(crm_server: Running, crm_ca_file: Path) -> dict[str, Any]:
    return http_table(crm_server.url, crm_ca_file)


def test_login_and_accounts_from_the_service(crm: Crm, table: dict[str, Any],
                                             zengine_client_factory: ClientFactory,
                                             zengine_check_document: DocumentCheck) -> None:
    client = zengine_client_factory(PLUGINS, config(table))
    response = client.get("/id.php", params=ALICE)
    assert response.status_code == 200, response.text
    zengine_check_document(response.content, "mobile", "1.14")
    root = etree.fromstring(response.content)
    accounts = root.findall("accounts/account")
    assert [a.findtext("ident") for a in accounts] == ["alice-1", "alice-2"]
    assert accounts[0].findtext("password") == SIP_SECRET  # escaped once by the serialiser
    assert accounts[1].findtext("username") == "1002"     # a JSON number becomes text
    assert accounts[0].findtext("SIP_transport_type") == "TLS"
    assert accounts[1].findtext("stun/use_stun") == "custom"  # overrides from the answer
    # The profile named by the service's "plan" field applied.
    assert accounts[0].findtext("SIP_dtmf_style") == "SIP_info_numeric"
    login, lines = crm.seen
    assert (login.method, login.raw_path) == ("POST", "/api/login")
    assert json.loads(login.body) == {"user": "alice", "secret": "wonderland"}
    assert login.headers["content-type"] == "application/json"
    assert (lines.method, lines.raw_path) == ("GET", "/api/customers/42/lines")


def test_values_are_encoded_never_pasted(crm: Crm, table: dict[str, Any],
                                         zengine_client_factory: ClientFactory,
                                         zengine_runtime_factory: RuntimeFactory) -> None:
    odd, password = 'o"dd/us?er&x=1', 'p"w\\&{x}'
    client = zengine_client_factory(PLUGINS, config(table))
    response = client.get("/id.php", params={"u": odd, "p": password, "v": "1.14"})
    # The CRM knows this user and has no lines for him: the login itself worked.
    assert b"No SIP account" in response.content
    assert json.loads(crm.seen[0].body) == {"user": odd, "secret": password}
    runtime = zengine_runtime_factory(["http"], config(table))
    identity = runtime.hooks.find_identity(odd, runtime, ["http"])
    assert identity is not None and identity.display_name == "Odd"
    assert crm.seen[-1].raw_path == "/api/users/o%22dd%2Fus%3Fer%26x%3D1"
    # A bare ".." cannot climb out of its path segment.
    assert runtime.hooks.find_identity("..", runtime, ["http"]) is None
    assert crm.seen[-1].raw_path == "/api/users/%2E%2E"


def test_query_and_form_templates_are_encoded(crm: Crm, crm_server: Running, crm_ca_file: Path,
                                              zengine_runtime_factory: RuntimeFactory) -> None:
    table = http_table(crm_server.url, crm_ca_file,
                       lookup={"url": f"{crm_server.url}/q", "query": {"who": "{username}"}},
                       accounts={"method": "POST", "url": f"{crm_server.url}/f",
                                 "form": {"user": "<{username}>"}})
    runtime = zengine_runtime_factory(["http"], config(table))
    assert runtime.hooks.find_identity("a&b=c d", runtime, ["http"]) is None
    assert crm.seen[-1].query == "who=a%26b%3Dc+d"
    assert runtime.hooks.load_accounts(Identity("a&b", "http"), runtime) == []
    assert crm.seen[-1].body == b"user=%3Ca%26b%3E"


@pytest.mark.parametrize(("params", "why"), [
    ({"u": "alice", "p": "nope", "v": "1.14"}, "wrong password"),
    ({"u": "bob", "p": "builder", "v": "1.14"}, "user disabled"),
])
def test_wrong_password_and_disabled_are_refused(crm: Crm, table: dict[str, Any],
                                                 zengine_client_factory: ClientFactory,
                                                 params: dict[str, str], why: str) -> None:
    client = zengine_client_factory(PLUGINS, config(table))
    response = client.get("/id.php", params=params)
    assert response.status_code == 200
    assert b"Wrong username or password" in response.content
    assert crm.hits == 1  # refused by the service; no accounts asked for


def test_result_field_says_wrong_password_on_a_200(crm: Crm, crm_server: Running,
                                                   crm_ca_file: Path,
                                                   zengine_client_factory: ClientFactory) -> None:
    crm.mode = "result-field"
    table = http_table(crm_server.url, crm_ca_file,
                       login={"result": "status", "wrong_password": [401, "bad_password"]})
    client = zengine_client_factory(PLUGINS, config(table))
    assert b"Wrong username or password" in client.get(
        "/id.php", params={**ALICE, "p": "nope"}).content
    assert b"<account>" in client.get("/id.php", params=ALICE).content


def test_unknown_user_abstains_so_the_next_backend_decides(
        crm: Crm, table: dict[str, Any], tmp_path: Path,
        zengine_client_factory: ClientFactory) -> None:
    from zengine.passwords import hash_password

    users = tmp_path / "users.toml"
    users.write_text(f'[users.carol]\npassword_hash = "{hash_password("pw")}"\n'
                     '[[users.carol.accounts]]\nident = "carol"\nsip_username = "2001"\n'
                     'sip_password = "x"\ndomain = "pbx.example"\n')
    cfg = config(table, plugins={"http": table, "static": {"users_file": str(users)}})
    cfg["auth"]["chain"] = ["http", "static"]
    client = zengine_client_factory([*PLUGINS, "static"], cfg)
    response = client.get("/id.php", params={"u": "carol", "p": "pw", "v": "1.14"})
    assert b"<ident>carol</ident>" in response.content
    assert [s.raw_path for s in crm.seen] == ["/api/login"]  # asked once, abstained
    nobody = client.get("/id.php", params={"u": "nobody", "p": "pw", "v": "1.14"})
    assert b"Wrong username or password" in nobody.content


def test_service_token_is_sent_and_basic_credentials_come_from_a_file(
        crm: Crm, crm_server: Running, crm_ca_file: Path, tmp_path: Path,
        zengine_client_factory: ClientFactory) -> None:
    from tests.http.crm import BASIC, TOKEN

    client = zengine_client_factory(PLUGINS, config(http_table(crm_server.url, crm_ca_file)))
    assert b"<account>" in client.get("/id.php", params=ALICE).content
    assert crm.seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    crm.reset()
    crm.require_auth = "basic"
    secret = tmp_path / "crm-password"
    secret.write_text(BASIC[1] + "\n")
    table = http_table(crm_server.url, crm_ca_file, bearer_token=None,
                       basic_username=BASIC[0], basic_password_file=str(secret))
    del table["bearer_token"]
    client = zengine_client_factory(PLUGINS, config(table))
    assert b"<account>" in client.get("/id.php", params=ALICE).content
    # From the environment, as an operator would pass it to a container.
    del table["basic_password_file"]
    client = zengine_client_factory(PLUGINS, config(table), environ={
        "ZENGINE_PLUGINS__HTTP__BASIC_PASSWORD": BASIC[1]})
    assert b"<account>" in client.get("/id.php", params=ALICE).content
    # The service refuses zengine's own credentials with a 401 too. By status alone that
    # reads as "wrong password"; the error text tells the two apart (docs/backends/http.md).
    crm.require_auth = "bearer"
    assert b"Wrong username or password" in client.get("/id.php", params=ALICE).content
    table["login"] = {**table["login"], "result": "error", "wrong_password": ["wrong password"],
                      "unknown_user": ["no such user"], "disabled": ["suspended"]}
    client = zengine_client_factory(PLUGINS, config(table), environ={
        "ZENGINE_PLUGINS__HTTP__BASIC_PASSWORD": BASIC[1]})
    assert client.get("/id.php", params=ALICE).status_code == 503
    crm.require_auth = "basic"
    assert b"Wrong username or password" in client.get(
        "/id.php", params={**ALICE, "p": "nope"}).content
