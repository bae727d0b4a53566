"""The real server (``zengine serve``) with the portal and the tokens plugin turned on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG

SESSION_KEY = "portal-test-session-key-0123456789abcdef"
ACCENT = "#7b1fa2"
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
        b'<circle cx="5" cy="5" r="4" fill="#fff"/></svg>')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base: str
    output: Path
    proc: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def portal_env(tmp: Path, port: int) -> dict[str, str]:
    """The example config plus the portal, from the environment as an operator might."""
    logo = tmp / "logo.svg"
    logo.write_bytes(LOGO)
    return {
        "ZENGINE_SERVER__PORT": str(port),
        "ZENGINE_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ZENGINE_PLUGINS__TOKENS__SQLITE_PATH": str(tmp / "tokens.db"),
        "ZENGINE_PLUGINS__TOKENS__PROVIDER_ID": "zengine-test",
        "ZENGINE_PLUGINS__PORTAL__ENABLED": "true",
        "ZENGINE_PLUGINS__PORTAL__SESSION_KEY": SESSION_KEY,
        "ZENGINE_PLUGINS__PORTAL__TITLE": "Example Telecom",
        "ZENGINE_PLUGINS__PORTAL__ACCENT_COLOR": f'"{ACCENT}"',
        "ZENGINE_PLUGINS__PORTAL__LOGO": str(logo),
    }


def start_server(tmp: Path, env: dict[str, str]) -> Server:
    port = int(env["ZENGINE_SERVER__PORT"])
    out_path = tmp / "server.log"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zengine.cli", "serve", "--config", str(EXAMPLE_CONFIG)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    server = Server(f"http://127.0.0.1:{port}", out_path, proc)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{server.base}/healthz", timeout=1)
            return server
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop_server(server)
                pytest.fail("server did not start:\n" + server.log())
            time.sleep(0.1)


def stop_server(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("portal")
    server = start_server(tmp, portal_env(tmp, free_port()))
    try:
        yield server
    finally:
        stop_server(server)
