"""The example plugin's own tests, written with zengine's test kit (the ``zengine_*`` fixtures
come from zengine's pytest plugin; no conftest needed)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from pydantic import SecretStr

from zengine.api import Account, ConfigError, Credentials, Identity, Rejected, hookimpl
from zengine.testing import Golden
from zengine.testkit import ClientFactory, DocumentCheck, RuntimeFactory
from zengine_example_billing.signing import account_key, sign_url, signature, verify_url

SECRET = "billing-master-secret-0123456789abcdef"
BALANCE = "https://billing.example.net/balance?user={username}&cur=${CURRENCY}"
RATE = "https://billing.example.net/rate?dest=${DESTINATION}"


class Isp:
    """Stands in for the ISP's own login backend in these tests; counts what it is asked."""

    def __init__(self) -> None:
        self.logins = 0
        self.loads = 0

    @hookimpl
    def zengine_authenticate(self, credentials: Credentials) -> Identity | Rejected | None:
        self.logins += 1
        if credentials.username != "alice":
            return None
        if credentials.password.get_secret_value() != "pw":
            return Rejected("isp")
        return Identity("alice", backend="isp")

    @hookimpl
    def zengine_load_accounts(self, identity: Identity) -> list[Account]:
        self.loads += 1
        return [Account(ident=ident, sip_username=user, sip_password=SecretStr("sip-pw"),
                        domain="sip.example.net", source="isp")
                for ident, user in (("alice-1", "1001"), ("alice-2", "1002"))]

    # A real backend returns what changes with its data (a row version, a file's load); this
    # stand-in's data never changes, and it never waits on I/O.
    @hookimpl
    def zengine_data_generation(self) -> str:
        return "1"

    @hookimpl
    def zengine_inline_safe(self) -> bool:
        return True


PLUGINS: list[str | tuple[str, object]] = ["zoiper", "urls", "example_billing", ("isp", Isp())]


def config(**billing: object) -> dict[str, object]:
    return {"auth": {"chain": ["isp"], "failure_floor_ms": 0},
            "defaults": {"balance_url": BALANCE, "rate_url": RATE},
            "plugins": {"example_billing": billing}}


def urls_of(document: bytes) -> dict[str, dict[str, str]]:
    root = etree.fromstring(document)
    return {account.findtext("ident") or "": {
        field: account.findtext(field) or "" for field in ("balance_url", "rate_url")}
        for account in root.iter("account")}


def as_zoiper_sends_it(url: str) -> str:
    return url.replace("${CURRENCY}", "EUR").replace("${DESTINATION}", "%2B3224")


def test_each_accounts_urls_carry_its_own_signature(
        zengine_client_factory: ClientFactory, zengine_check_document: DocumentCheck) -> None:
    client = zengine_client_factory(PLUGINS, config(secret=SECRET))
    response = client.get("/id.php", params={"u": "alice", "p": "pw", "v": "1.14"})
    assert response.status_code == 200, response.text
    zengine_check_document(response.content, "mobile", "1.14")
    urls = urls_of(response.content)
    assert set(urls) == {"alice-1", "alice-2"}
    for ident, fields in urls.items():
        balance = fields["balance_url"]
        # The urls plugin expanded {username} first; Zoiper's own placeholder survived.
        assert balance.startswith(
            "https://billing.example.net/balance?user=alice&cur=${CURRENCY}&")
        query = parse_qs(urlsplit(balance).query)
        assert query["zb_account"] == [ident] and query["zb_field"] == ["balance_url"]
        assert verify_url(as_zoiper_sends_it(balance), SECRET.encode()) == ident
        assert verify_url(as_zoiper_sends_it(fields["rate_url"]), SECRET.encode()) == ident
    assert urls["alice-1"]["balance_url"] != urls["alice-2"]["balance_url"]


def test_signed_urls_match_the_golden_file(zengine_client_factory: ClientFactory,
                                           zengine_golden: Golden) -> None:
    """Only this plugin's output is pinned, so a change elsewhere in the document does not
    break it. Rewrite with ``pytest --zengine-update-golden`` and review the diff."""
    client = zengine_client_factory(PLUGINS, config(secret=SECRET))
    response = client.get("/id.php", params={"u": "alice", "p": "pw", "v": "1.14"})
    lines = [f"{ident} {field} {url}" for ident, fields in sorted(urls_of(response.content).items())
             for field, url in sorted(fields.items())]
    zengine_golden.check("alice-urls.txt", "\n".join(lines) + "\n")


ALICE = {"u": "alice", "p": "pw", "v": "1.14"}


def test_a_returning_phone_gets_the_cached_document_on_the_fast_path(
        zengine_client_factory: ClientFactory) -> None:
    """The plugin reports a data generation and is inline-safe, so it leaves the document
    cache and the fast path on: a returning phone is neither re-authenticated by the backend
    nor has its document rebuilt, and gets the same signed bytes."""
    isp = Isp()
    client = zengine_client_factory(["zoiper", "urls", "example_billing", ("isp", isp)],
                                    config(secret=SECRET))
    first = client.get("/id.php", params=ALICE)
    assert first.status_code == 200 and (isp.logins, isp.loads) == (1, 1)
    for _ in range(3):
        again = client.get("/id.php", params=ALICE)
        assert (again.status_code, again.content) == (200, first.content)
    assert (isp.logins, isp.loads) == (1, 1)
    assert verify_url(as_zoiper_sends_it(urls_of(first.content)["alice-1"]["balance_url"]),
                      SECRET.encode()) == "alice-1"
    # A wrong password is never answered from the cache.
    assert b"<account>" not in client.get("/id.php", params={**ALICE, "p": "nope"}).content
    assert isp.logins == 2


def test_a_new_secret_is_a_new_runtime_and_never_gets_old_signatures(
        zengine_client_factory: ClientFactory) -> None:
    """The generation is a constant because the secret is read at startup: a reload with
    another secret builds a new runtime, whose document cache starts empty."""
    other = "another-billing-master-secret-0123456789"
    bodies = []
    for secret in (SECRET, other):
        client = zengine_client_factory(PLUGINS, config(secret=secret))
        for _ in range(2):
            bodies.append(client.get("/id.php", params=ALICE).content)
    assert bodies[0] == bodies[1] and bodies[2] == bodies[3] and bodies[1] != bodies[2]
    balance = as_zoiper_sends_it(urls_of(bodies[3])["alice-2"]["balance_url"])
    assert verify_url(balance, other.encode()) == "alice-2"
    assert verify_url(balance, SECRET.encode()) is None


def test_the_plugin_reports_a_generation_and_is_inline_safe() -> None:
    import zengine_example_billing as billing

    assert billing.zengine_data_generation() == "1"
    assert billing.zengine_inline_safe() is True


def test_a_changed_url_is_refused() -> None:
    secret = SECRET.encode()
    url = sign_url("https://b.example/balance?x=1", secret, "alice-1", "balance_url")
    assert verify_url(url, secret) == "alice-1"
    assert verify_url(url.replace("zb_account=alice-1", "zb_account=alice-2"), secret) is None
    assert verify_url(url.replace("zb_field=balance_url", "zb_field=rate_url"), secret) is None
    assert verify_url(url + "&zb_account=alice-2", secret) is None  # repeated parameter
    assert verify_url(url, b"another-secret-another-secret-xx") is None
    assert verify_url("https://b.example/balance", secret) is None
    # Known answer, computed here without the plugin's code: what a billing server checks.
    key = hmac.new(secret, b"zengine-example-billing/v1/alice-1", hashlib.sha256).digest()
    expected = hmac.new(key, b"balance_url\nalice-1", hashlib.sha256).hexdigest()
    assert parse_qs(urlsplit(url).query)["zb_sig"] == [expected]
    # Per-account keys: the billing server may keep one key per account instead of the master.
    assert account_key(secret, "alice-1") != account_key(secret, "alice-2")
    assert signature(secret, "alice-1", "balance_url") in url
    with pytest.raises(ValueError, match="already carries"):
        sign_url(url, secret, "alice-1", "balance_url")
    assert sign_url("https://b.example/p#frag", secret, "a", "rate_url").endswith("#frag")


def test_without_a_secret_the_plugin_changes_nothing(
        zengine_client_factory: ClientFactory) -> None:
    client = zengine_client_factory(PLUGINS, config())
    response = client.get("/id.php", params={"u": "alice", "p": "pw", "v": "1.14"})
    assert urls_of(response.content)["alice-1"]["rate_url"] == RATE


@pytest.mark.parametrize(("billing", "message"), [
    ({"secret": "short"}, "at least 32 bytes"),
    ({"secret": SECRET, "fields": ["token_url"]}, r"\['token_url'\] cannot be signed"),
    ({"secret": SECRET, "secret_file": "x"}, "not both"),
    ({"secet": SECRET}, "unknown key 'secet'"),
])
def test_configuration_mistakes_are_named(zengine_runtime_factory: RuntimeFactory,
                                          billing: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as failure:
        zengine_runtime_factory(PLUGINS, config(**billing))
    assert SECRET not in str(failure.value)


def _zengine(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("zengine")  # the installed console script
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_zengine_billing_command_signs_and_verifies(tmp_path: Path) -> None:
    (tmp_path / "billing-secret").write_text(SECRET + "\n")
    cfg = tmp_path / "zengine.toml"
    cfg.write_text('[plugins.example_billing]\nsecret_file = "billing-secret"\n')
    signed = _zengine("billing", "--config", str(cfg), "sign", "--account", "alice-1",
                      "https://billing.example.net/balance?cur=EUR")
    assert signed.returncode == 0, signed.stderr
    url = signed.stdout.strip()
    assert verify_url(url, SECRET.encode()) == "alice-1"
    ok = _zengine("billing", "-c", str(cfg), "verify", url)
    assert (ok.returncode, ok.stdout.strip()) == (0, "valid: account alice-1")
    bad = _zengine("billing", "-c", str(cfg), "verify", url.replace("alice-1", "alice-2"))
    assert bad.returncode == 1 and bad.stdout.startswith("invalid")
    unset = _zengine("billing", "verify", url)
    assert unset.returncode == 2 and "no [plugins.example_billing] secret" in unset.stderr
    helped = _zengine("billing", "--help")
    assert helped.returncode == 0 and "sign" in helped.stdout and "verify" in helped.stdout
