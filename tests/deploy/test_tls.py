"""TLS in ``zengine serve`` on every engine: a real server process, real certificates (trustme)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
import trustme

from tests.conftest import EXAMPLE_CONFIG
from tests.deploy.processes import free_port, stop, wait_until
from tests.test_log_secrecy import SECRETS

LOGIN = {"username": "alice", "password": "wonderland", "version": "1.14"}
ENGINES = ("hypercorn", "granian", "uvicorn")
#: Engines that speak HTTP/2 over TLS (ALPN ``h2``) with ``tls_http2``; uvicorn has none.
HTTP2 = {"hypercorn": True, "granian": True, "uvicorn": False}
ACCESS_LOGGER = {"hypercorn": "hypercorn.access", "granian": "granian.access",
                 "uvicorn": "uvicorn.access"}


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path  # SEC1 (BEGIN EC PRIVATE KEY), trustme's
    rsa_cert: Path
    rsa_key: Path  # PKCS#1 (BEGIN RSA PRIVATE KEY)
    client: trustme.LeafCert

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(tmp / "cert.pem")
    leaf.private_key_pem.write_to_path(tmp / "key.pem")
    # The same CA signs an RSA leaf: the server may hold either kind of key.
    rsa = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    rsa.cert_chain_pems[0].write_to_path(tmp / "rsa-cert.pem")
    rsa.private_key_pem.write_to_path(tmp / "rsa-key.pem")
    ca.cert_pem.write_to_path(tmp / "ca.pem")
    assert (tmp / "key.pem").read_text().startswith("-----BEGIN EC PRIVATE KEY")
    assert (tmp / "rsa-key.pem").read_text().startswith("-----BEGIN RSA PRIVATE KEY")
    return Pki(tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem", tmp / "rsa-cert.pem",
               tmp / "rsa-key.pem", ca.issue_cert("phone-17@example.com"))


def _up(url: str, trust: ssl.SSLContext) -> bool:
    try:
        httpx.get(url, verify=trust, timeout=1)
    except (httpx.TransportError, ssl.SSLError):
        return False
    return True


def _serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", "serve", "--config",
                                 str(EXAMPLE_CONFIG)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "ZENGINE_SERVER__PORT": str(port), **env})
    return proc, port, log


def _alpn(port: int, trust: ssl.SSLContext) -> str | None:
    """The protocol the server picks when the client offers h2 and http/1.1."""
    trust.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.selected_alpn_protocol()


def _assert_no_secret(engine: str, output: str) -> None:
    """As tests/test_log_secrecy.py: the whole output, every secret; and the engine's own
    access line is there, without the query string."""
    for secret in SECRETS:
        assert secret not in output, f"{secret!r} leaked into the {engine} output over TLS"
    access = [json.loads(line)["event"] for line in output.splitlines()
              if line.startswith("{") and json.loads(line).get("logger") == ACCESS_LOGGER[engine]]
    assert any("GET /id.php " in line for line in access), output
    assert not any("?" in line for line in access), access


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ENGINES)
def test_tls_login_http2_and_client_certificates(tmp_path: Path, pki: Pki, engine: str) -> None:
    tls = {"ZENGINE_SERVER__ENGINE": engine, "ZENGINE_LOGGING__LEVEL": "debug",
           "ZENGINE_SERVER__TLS_CERTIFICATE": str(pki.cert),
           "ZENGINE_SERVER__TLS_KEY": str(pki.key)}
    http2 = HTTP2[engine]
    proc, port, log = _serve(tmp_path, {**tls, "ZENGINE_SERVER__TLS_HTTP2": str(http2).lower()})
    base = f"https://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(f"{base}/livez", pki.trust()), f"{engine} (TLS)", log, proc, 60)
        with httpx.Client(verify=pki.trust(), http2=True) as client:
            reply = client.get(f"{base}/id.php", params=LOGIN)
            form = client.post(f"{base}/id.php", data=LOGIN)
        assert reply.status_code == 200 and b"Tea&amp;Cakes&lt;3" in reply.content
        assert form.status_code == 200 and b"<account>" in form.content
        assert reply.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert _alpn(port, pki.trust()) == ("h2" if http2 else None)
    finally:
        stop(proc)
    time.sleep(0.2)  # worker processes flush their last lines on the way out
    _assert_no_secret(engine, log.read_text())

    # Client certificates required, an RSA (PKCS#1) server key, two workers, no tls_http2.
    proc, port, log = _serve(tmp_path, {
        **tls, "ZENGINE_SERVER__TLS_CERTIFICATE": str(pki.rsa_cert),
        "ZENGINE_SERVER__TLS_KEY": str(pki.rsa_key), "ZENGINE_SERVER__WORKERS": "2",
        "ZENGINE_SERVER__TLS_CLIENT_CA": str(pki.ca)})
    base = f"https://127.0.0.1:{port}"
    try:
        with_cert = pki.trust()
        pki.client.configure_cert(with_cert)
        wait_until(lambda: _up(f"{base}/livez", with_cert), f"{engine} (mTLS)", log, proc, 60)
        for _ in range(3):
            reply = httpx.get(f"{base}/id.php", params=LOGIN, verify=with_cert)
            assert reply.status_code == 200 and reply.http_version == "HTTP/1.1"
        assert _alpn(port, with_cert) in (None, "http/1.1")
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            httpx.get(f"{base}/id.php", params=LOGIN, verify=pki.trust())
        assert proc.poll() is None
    finally:
        stop(proc)
    time.sleep(0.2)
    _assert_no_secret(engine, log.read_text())


def test_tls_settings_refuse_half_a_pair_and_unloadable_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from zengine import cli

    monkeypatch.setenv("ZENGINE_SERVER__TLS_CERTIFICATE", str(tmp_path / "cert.pem"))
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    assert "tls_certificate and tls_key go together" in capsys.readouterr().err
    monkeypatch.setenv("ZENGINE_SERVER__TLS_KEY", str(tmp_path / "key.pem"))
    monkeypatch.setenv("ZENGINE_SERVER__PORT", str(free_port()))
    for engine in ENGINES:
        monkeypatch.setenv("ZENGINE_SERVER__ENGINE", engine)
        assert cli.main(["serve", "--config", str(EXAMPLE_CONFIG)]) == 2
        err = capsys.readouterr().err
        assert f"cannot load certificate {tmp_path / 'cert.pem'}" in err, err
        assert "Traceback" not in err


#: Seconds a client silent in the TLS handshake is held, at read_timeout = 1: hypercorn's and
#: uvicorn's handshake limit is read_timeout; granian's is its own fixed 10 s.
HANDSHAKE_HELD = {"hypercorn": (0.5, 5.0), "granian": (5.0, 15.0), "uvicorn": (0.5, 5.0)}


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_silent_in_the_tls_handshake_is_dropped(tmp_path: Path, pki: Pki,
                                                         engine: str) -> None:
    """A client that connects and never sends its ClientHello is dropped, not held: at
    read_timeout on hypercorn and uvicorn (the engines' own handshake limits were 60 s,
    whatever read_timeout said: the read deadline starts after the handshake), at granian's
    fixed 10 s there."""
    proc, port, log = _serve(tmp_path, {
        "ZENGINE_SERVER__ENGINE": engine, "ZENGINE_SERVER__READ_TIMEOUT": "1",
        "ZENGINE_SERVER__TLS_CERTIFICATE": str(pki.cert),
        "ZENGINE_SERVER__TLS_KEY": str(pki.key)})
    try:
        wait_until(lambda: _up(f"https://127.0.0.1:{port}/livez", pki.trust()),
                   f"{engine} (TLS)", log, proc, 60)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            start = time.monotonic()
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - start
        low, high = HANDSHAKE_HELD[engine]
        assert low < elapsed < high, elapsed
        # The server still serves after dropping it.
        assert _up(f"https://127.0.0.1:{port}/livez", pki.trust())
    finally:
        stop(proc)


#: TLS 1.2 suites for the server's ECDSA key: every engine offers the AEAD ones rustls (granian)
#: has, and none of the CBC ones (uvicorn took Python's defaults, CBC and all; hypercorn
#: lacked ChaCha20, which granian and uvicorn offer).
TLS12_OFFERED = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305")
TLS12_REFUSED = ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
                 "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA")


def _handshakes(port: int, pki: Pki, suite: str) -> bool:
    """Whether a TLS 1.2 client offering ``suite`` alone completes a handshake."""
    client = pki.trust()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers(suite)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cipher = tls.cipher()
            return cipher is not None and cipher[0] == suite
    except (ssl.SSLError, ConnectionError):
        return False


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_offers_the_same_tls12_suites(tmp_path: Path, pki: Pki,
                                                   engine: str) -> None:
    proc, port, log = _serve(tmp_path, {
        "ZENGINE_SERVER__ENGINE": engine, "ZENGINE_SERVER__TLS_CERTIFICATE": str(pki.cert),
        "ZENGINE_SERVER__TLS_KEY": str(pki.key)})
    try:
        wait_until(lambda: _up(f"https://127.0.0.1:{port}/livez", pki.trust()),
                   f"{engine} (TLS)", log, proc, 60)
        accepted = {suite: _handshakes(port, pki, suite)
                    for suite in (*TLS12_OFFERED, *TLS12_REFUSED)}
    finally:
        stop(proc)
    assert accepted == {**dict.fromkeys(TLS12_OFFERED, True),
                        **dict.fromkeys(TLS12_REFUSED, False)}, accepted


@pytest.mark.subprocess
def test_a_key_with_a_pass_phrase_is_a_configuration_error_not_a_prompt(tmp_path: Path,
                                                                        pki: Pki) -> None:
    """OpenSSL asks for a pass phrase on the terminal when nothing supplies one: ``zengine
    serve`` waited at that prompt for ever (stdin a terminal, as at an operator's shell)."""
    import pty

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pki.rsa_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass-phrase-4711")))
    encrypted.chmod(0o600)
    _terminal, stdin = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zengine.cli", "serve", "--config", str(EXAMPLE_CONFIG)],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "ZENGINE_SERVER__PORT": str(free_port()),
             "ZENGINE_SERVER__TLS_CERTIFICATE": str(pki.rsa_cert),
             "ZENGINE_SERVER__TLS_KEY": str(encrypted)})
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("zengine serve waited at OpenSSL's pass phrase prompt")
    finally:
        os.close(_terminal)
        os.close(stdin)
    text = output.decode()
    assert proc.returncode == 2, text
    assert f"key {encrypted}" in text and "pass phrase" in text, text
    assert "Enter PEM pass phrase" not in text and "Traceback" not in text, text


def test_check_config_refuses_the_tls_files_serve_would_refuse(
        pki: Pki, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``check-config`` said OK for a key ``serve`` then refused (one that does not match its
    certificate here): it loads the TLS files as ``serve`` does."""
    from zengine import cli

    monkeypatch.setenv("ZENGINE_SERVER__TLS_CERTIFICATE", str(pki.cert))
    monkeypatch.setenv("ZENGINE_SERVER__TLS_KEY", str(pki.rsa_key))  # the other leaf's key
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert f"key {pki.rsa_key}" in err and "Traceback" not in err, err
    monkeypatch.setenv("ZENGINE_SERVER__TLS_KEY", str(pki.key))
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 0
