"""The HTTP Basic challenge over real HTTP: the real server as a subprocess, real clients.

``urllib``'s ``HTTPBasicAuthHandler`` sends credentials only after a ``401`` whose
``WWW-Authenticate`` names its realm: exactly the client Zoiper5 may be, which never logs in
without the challenge.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from lxml import etree

from tests.clients.conftest import GOLDEN, PASSWORD, make_settings, open_client, users_toml_config

REALM = "Example Telecom provisioning"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, users_file: Path) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("challenge")
    config = workdir / "zengine.toml"
    config.write_text(users_toml_config(users_file), encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "ZENGINE_SERVER__PORT": str(port),
           "ZENGINE_CLIENTS__BASIC_REALM": REALM, "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zengine.cli", "serve", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("server did not start:\n"
                                + (workdir / "server.log").read_text())
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def _urllib_leaks_its_401() -> Iterator[None]:
    # HTTPBasicAuthHandler retries without closing the 401 response it answered (CPython's
    # urllib): collect that socket here instead of failing a later test on its ResourceWarning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


def _error_text(body: bytes) -> str:
    root = etree.fromstring(body)
    assert root.tag == "error" and root.get("code") == "1"
    return root.text or ""


@pytest.mark.subprocess
def test_desktop_request_without_credentials_is_challenged(server: str) -> None:
    response = httpx.get(f"{server}/desktop")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE
    # The body is still the error document Zoiper can show.
    assert "username" in _error_text(response.content)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.subprocess
def test_desktop_url_with_unsubstituted_placeholders_is_challenged(server: str) -> None:
    response = httpx.get(f"{server}/desktop?user=[user]&pass=[pass]")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE


@pytest.mark.subprocess
def test_a_client_that_waits_for_the_challenge_logs_in(server: str) -> None:
    manager = urllib.request.HTTPPasswordMgr()
    manager.add_password(REALM, server, "alice", PASSWORD)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(manager))
    # Zoiper5 with authentication_type=basic leaves [user]/[pass] in its URL unsubstituted.
    with _urllib_leaks_its_401(), opener.open(f"{server}/desktop?user=[user]&pass=[pass]",
                                              timeout=10) as response:
        assert response.status == 200
        body = response.read()
    assert body == (GOLDEN / "desktop" / "basic.xml").read_bytes()


@pytest.mark.subprocess
def test_failed_basic_login_is_challenged_again(server: str) -> None:
    token = base64.b64encode(b"alice:not-the-password").decode()
    for path in ("/desktop", "/id.php"):  # Basic is accepted on every path
        response = httpx.get(f"{server}{path}", headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == CHALLENGE
        assert _error_text(response.content) == "Wrong username or password."
    # A client that keeps failing gives up rather than looping (urllib stops after a retry).
    manager = urllib.request.HTTPPasswordMgr()
    manager.add_password(REALM, server, "alice", "not-the-password")
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(manager))
    with _urllib_leaks_its_401(), pytest.raises(urllib.error.HTTPError) as info:
        opener.open(f"{server}/desktop", timeout=10)
    info.value.close()
    assert info.value.code == 401


@pytest.mark.subprocess
def test_mobile_paths_keep_the_configured_status(server: str) -> None:
    # Mobile apps show the <error> text of a 200: no challenge for missing credentials there,
    # nor for a wrong password sent in the URL.
    missing = httpx.get(f"{server}/id.php", params={"version": "1.14"})
    assert missing.status_code == 200
    assert "www-authenticate" not in missing.headers
    wrong = httpx.get(f"{server}/desktop", params={"user": "alice", "pass": "nope"})
    assert wrong.status_code == 200
    assert "www-authenticate" not in wrong.headers


def test_challenge_can_cover_every_path_or_be_turned_off(users_file: Path) -> None:
    everywhere = make_settings(users_file, clients={"basic_challenge": "everywhere"})
    with open_client(everywhere) as client:
        response = client.get("/id.php", params={"version": "1.14"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="zengine", charset="UTF-8"'
    off = make_settings(users_file, clients={"basic_challenge": "off"})
    with open_client(off) as client:
        response = client.get("/desktop")
        assert response.status_code == 200
        assert "www-authenticate" not in response.headers
        token = base64.b64encode(b"alice:nope").decode()
        response = client.get("/desktop", headers={"Authorization": f"Basic {token}"})
        assert response.status_code == 200


@pytest.mark.parametrize("realm", ['say "hi"', "back\\slash", "tab\there", "caf\u00e9", ""])
def test_realm_that_cannot_be_quoted_is_a_config_error(users_file: Path, realm: str) -> None:
    from zengine.errors import ConfigError

    with pytest.raises(ConfigError, match="basic_realm"):
        make_settings(users_file, clients={"basic_realm": realm})
