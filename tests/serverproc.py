"""The real server as a subprocess on a free loopback port, for tests that speak raw HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log_path: Path,
                 host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.proc = proc
        self.log_path = log_path

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def raw(self, data: bytes, *, timeout: float = 5.0) -> bytes:
        """Send ``data`` on a fresh connection; everything the server answers until it closes
        or falls silent for ``timeout``."""
        with socket.create_connection(self.address, timeout=timeout) as sock:
            sock.sendall(data)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log_path: Path,
                host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if read_all(sock).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail("server did not start:\n" + log_path.read_text(errors="replace"))
        time.sleep(0.1)


@contextlib.contextmanager
def running_server(config: Path, tmp_path: Path, *, env: dict[str, str] | None = None,
                   preexec_fn: Callable[[], None] | None = None,
                   host: str = "127.0.0.1") -> Iterator[Server]:
    """``zengine serve`` on a free port of ``host`` (also passed as ``[server] host``)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    environ = {**os.environ, "ZENGINE_SERVER__PORT": str(port),
               **({"ZENGINE_SERVER__HOST": host} if host != "127.0.0.1" else {}), **(env or {})}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zengine.cli", "serve", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=environ, preexec_fn=preexec_fn)
        try:
            _wait_ready(port, proc, log_path, host)
            yield Server(port, proc, log_path, host)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of the first HTTP/1.1 response in ``raw``."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version == "HTTP/1.1", lines[0]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return int(status), headers, rest[:length]
