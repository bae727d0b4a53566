"""TLS in ``zengine serve`` (hypercorn): a real server process, real certificates (trustme)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest
import trustme

from tests.conftest import EXAMPLE_CONFIG
from tests.deploy.processes import free_port, stop, wait_until

LOGIN = {"username": "alice", "password": "wonderland", "version": "1.14"}


def _up(url: str, trust: ssl.SSLContext) -> bool:
    try:
        httpx.get(url, verify=trust, timeout=1)
    except (httpx.TransportError, ssl.SSLError):
        return False
    return True


@pytest.mark.subprocess
def test_tls_serve_with_http2_and_client_certificates(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    server_cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    client_cert = ca.issue_cert("phone-17@example.com")
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))

    def serve(extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, Path]:
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        env = {**os.environ, "ZENGINE_SERVER__PORT": str(port),
               "ZENGINE_SERVER__TLS_CERTIFICATE": str(tmp_path / "cert.pem"),
               "ZENGINE_SERVER__TLS_KEY": str(tmp_path / "key.pem"), **extra}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", "serve", "--config",
                                     str(EXAMPLE_CONFIG)], stdout=out,
                                    stderr=subprocess.STDOUT, env=env)
        return proc, f"https://127.0.0.1:{port}", log

    proc, base, log = serve({"ZENGINE_SERVER__TLS_HTTP2": "true"})
    try:
        wait_until(lambda: _up(f"{base}/livez", trust), "zengine (TLS)", log, proc)
        with httpx.Client(verify=trust, http2=True) as client:
            reply = client.get(f"{base}/id.php", params=LOGIN)
        assert reply.status_code == 200 and b"<account>" in reply.content
        assert reply.http_version == "HTTP/2"
    finally:
        stop(proc)

    proc, base, log = serve({"ZENGINE_SERVER__TLS_CLIENT_CA": str(tmp_path / "ca.pem")})
    try:
        with_cert = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        client_cert.configure_cert(with_cert)
        wait_until(lambda: _up(f"{base}/livez", with_cert), "zengine (mTLS)", log, proc)
        reply = httpx.get(f"{base}/id.php", params=LOGIN, verify=with_cert)
        assert reply.status_code == 200 and reply.http_version == "HTTP/1.1"
        with pytest.raises((httpx.TransportError, ssl.SSLError)):
            httpx.get(f"{base}/id.php", params=LOGIN, verify=trust)
    finally:
        stop(proc)
    assert "wonderland" not in log.read_text()


def test_tls_settings_refuse_half_a_pair_and_unloadable_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from zengine import cli

    monkeypatch.setenv("ZENGINE_SERVER__TLS_CERTIFICATE", str(tmp_path / "cert.pem"))
    assert cli.main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 2
    assert "tls_certificate and tls_key go together" in capsys.readouterr().err
    monkeypatch.setenv("ZENGINE_SERVER__TLS_KEY", str(tmp_path / "key.pem"))
    monkeypatch.setenv("ZENGINE_SERVER__PORT", str(free_port()))
    assert cli.main(["serve", "--config", str(EXAMPLE_CONFIG)]) == 2
    err = capsys.readouterr().err
    assert f"cannot load certificate {tmp_path / 'cert.pem'}" in err and "Traceback" not in err


@pytest.mark.subprocess
def test_a_client_silent_in_the_tls_handshake_is_dropped_at_read_timeout(
        tmp_path: Path) -> None:
    """read_timeout drops a client that stops sending at any point, in the TLS handshake too:
    hypercorn's own handshake timeout (60 s) held a connection that never sent its
    ClientHello that long, whatever read_timeout said (the read deadline and the keep-alive
    timer start after the handshake)."""
    import socket
    import time

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    server_cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    trust = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "ZENGINE_SERVER__PORT": str(port), "ZENGINE_SERVER__READ_TIMEOUT": "1",
           "ZENGINE_SERVER__TLS_CERTIFICATE": str(tmp_path / "cert.pem"),
           "ZENGINE_SERVER__TLS_KEY": str(tmp_path / "key.pem")}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", "serve", "--config",
                                 str(EXAMPLE_CONFIG)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    try:
        wait_until(lambda: _up(f"https://127.0.0.1:{port}/livez", trust), "zengine (TLS)",
                   log, proc)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            start = time.monotonic()
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
            elapsed = time.monotonic() - start
        assert 0.5 < elapsed < 5, elapsed
    finally:
        stop(proc)
