"""contrib/nginx/zengine.conf, run by Debian's nginx in front of a real zengine process.

Logins on every path while zengine is up, more while it is down, then every file nginx wrote is
searched for the passwords. A second error log at nginx's default level ``error`` is the control:
it must hold the passwords, or the test would prove nothing about the ``crit`` level the recipe
chooses.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx2 as httpx
import pytest
import trustme

from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.deploy.processes import free_port, nginx, nginx_available, stop, zengine_server

RECIPE = ROOT / "contrib" / "nginx" / "zengine.conf"
#: What each login sends; none of it may reach a log. (alice/wonderland, bob/builder are real.)
PASSWORDS = ("wonderland", "builder", "wrong-pass-7f3a", "down-pass-91c2", "big-body-pass-55")


def site_config(prefix: Path, cert: Path, key: Path, nginx_port: int, zengine_port: int) -> str:
    """The recipe with only addresses and file locations changed, each change checked."""
    text = RECIPE.read_text()
    changes = [
        # The control, first: nginx's default level, in a file of its own; the recipe's own
        # error_log line stays as it is.
        ("    error_log /var/log/nginx/zengine.error.log",
         "    error_log /var/log/nginx/control.error.log error;\n"
         "    error_log /var/log/nginx/zengine.error.log"),
        ("listen 443 ssl http2 default_server;",
         f"listen 127.0.0.1:{nginx_port} ssl http2 default_server;"),
        ("listen [::]:443 ssl http2 default_server;", ""),
        ("/etc/ssl/zengine/fullchain.pem", str(cert)),
        ("/etc/ssl/zengine/privkey.pem", str(key)),
        ("/var/log/nginx/", f"{prefix}/"),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{zengine_port};"),
    ]
    for old, new in changes:
        assert old in text, f"{RECIPE} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def logins(client: httpx.Client, base: str, password: str) -> list[httpx.Response]:
    """A login on every provisioning path, by query string and by form body."""
    return [
        client.get(f"{base}/id.php", params={"username": "alice", "password": password,
                                             "version": "1.14"}),
        client.get(f"{base}/provision?u=bob&p={password}&v=1.14",
                   headers={"Referer": f"{base}/x?password={password}"}),
        client.get(f"{base}/desktop", params={"username": "alice", "password": password}),
        client.post(f"{base}/id.php?v=1.14", data={"username": "alice", "password": password}),
    ]


@pytest.mark.subprocess
def test_nginx_recipe_serves_every_path_and_logs_no_password(tmp_path: Path) -> None:
    nginx_available()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (tmp_path / "cert.pem", tmp_path / "key.pem",
                                    tmp_path / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    nginx_port, zengine_port = free_port(), free_port()
    site = site_config(prefix, cert_file, key_file, nginx_port, zengine_port)
    trust = ssl.create_default_context(cafile=str(ca_file))
    front = f"https://127.0.0.1:{nginx_port}"

    # The client connects from 127.0.0.2; nginx (127.0.0.1) is zengine's trusted proxy.
    transport = httpx.HTTPTransport(verify=trust, http2=True, local_address="127.0.0.2")
    zengine_log = tmp_path / "zengine.log"
    with zengine_server(EXAMPLE_CONFIG, zengine_log, port=zengine_port,
                        env={"ZENGINE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}) as (
            server, _), nginx(prefix, site, f"{front}/healthz", trust), \
            httpx.Client(transport=transport, timeout=10) as client:
        ok = [*logins(client, front, "wonderland")[:1],
              client.get(f"{front}/provision?u=bob&p=builder&v=1.14"),
              *logins(client, front, "wonderland")[2:]]
        assert [r.status_code for r in ok] == [200, 200, 200, 200]
        assert all(b"<account>" in r.content for r in ok), [r.text for r in ok]
        assert ok[0].http_version == "HTTP/2"
        wrong = logins(client, front, "wrong-pass-7f3a")
        assert all(b"<error" in r.content for r in wrong)
        health = client.get(f"{front}/healthz")
        assert health.status_code == 200 and health.text == "ok\n"

        stop(server)  # zengine goes away; nginx keeps taking logins
        down = logins(client, front, "down-pass-91c2")
        assert {r.status_code for r in down} == {502}
        big = client.post(f"{front}/provision?password=big-body-pass-55",
                          content=b"username=alice&x=" + b"y" * 20000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413

    # zengine saw the client's address, forwarded by nginx, not nginx's own.
    audit = [json.loads(line) for line in zengine_log.read_text().splitlines()
             if line.startswith("{") and '"audit.login' in line]
    assert audit and {event["client_addr"] for event in audit} == {"127.0.0.2"}
    client_lines = [line for line in (prefix / "zengine.access.log").read_text().splitlines()
                    if "HTTP/2.0" in line]
    assert client_lines and all(line.startswith("127.0.0.2 ") for line in client_lines)
    written = {path.name: path.read_bytes() for path in prefix.iterdir() if path.is_file()}
    control = written.pop("control.error.log")
    # The control proves the leak is real at nginx's default level...
    assert b"down-pass-91c2" in control and b"big-body-pass-55" in control
    # ... and nothing the recipe writes holds any password, or any query string.
    for name, content in written.items():
        for password in PASSWORDS:
            assert password.encode() not in content, f"{password!r} in nginx's {name}"
    access = written["zengine.access.log"].decode()
    assert "?" not in access
    for path in ("/id.php", "/provision", "/desktop", "/healthz"):
        assert f"GET {path} HTTP/2.0\" 200" in access or f"GET {path} HTTP/2.0\" 502" in access
    # The outage is visible in the access log: 502 with the upstream's status.
    assert access.count("\" 502 ") == len(down) and "upstream_status=502" in access
    assert "\" 413 " in access


@pytest.mark.subprocess
def test_nginx_recipe_logs_a_tenant_path_key_masked(tmp_path: Path) -> None:
    from tests.tenants_kit import KEYS, PASSWORDS, config, served_sip

    nginx_available()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    nginx_port, zengine_port = free_port(), free_port()
    site = site_config(prefix, cert_file, key_file, nginx_port, zengine_port)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    front = f"https://127.0.0.1:{nginx_port}"
    wrong_key = "Not-a-key-of-anyone-0123456789abcdefghijk"
    with zengine_server(config(tmp_path), tmp_path / "zengine.log", port=zengine_port) as (
            _server, _), nginx(prefix, site, f"{front}/healthz", trust), \
            httpx.Client(verify=trust, timeout=10) as client:
        for key, expect in ((KEYS["acme"][0], {"acme"}), (wrong_key, set())):
            answer = client.get(f"{front}/t/{key}/id.php",
                                params={"username": "alice", "password": PASSWORDS["acme"]})
            assert served_sip(answer.content) == expect
    access = (prefix / "zengine.access.log").read_text()
    assert access.count('"GET /t/~/id.php HTTP/1.1" 200') == 2, access
    for path in prefix.iterdir():
        if path.is_file() and path.name != "control.error.log":
            text = path.read_text(errors="replace")
            assert KEYS["acme"][0] not in text and wrong_key not in text, path.name
    zengine_text = (tmp_path / "zengine.log").read_text()
    assert KEYS["acme"][0] not in zengine_text and wrong_key not in zengine_text
