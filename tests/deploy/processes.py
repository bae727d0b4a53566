"""Real processes for the deployment tests: a zengine server and Debian's nginx, on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import service_missing

NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], what: str, log: Path, proc: subprocess.Popen[bytes],
               timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def _answers(url: str, verify: bool | ssl.SSLContext = True) -> Callable[[], bool]:
    def check() -> bool:
        try:
            httpx.get(url, timeout=1, verify=verify)
        except httpx.TransportError:
            return False
        return True
    return check


@contextmanager
def zengine_server(config: Path, log: Path, *, env: Mapping[str, str] | None = None,
                   args: tuple[str, ...] = (), port: int | None = None,
                   start_timeout: float = 60.0) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``zengine serve`` as a subprocess on a free loopback port; yields it and its base URL."""
    port = free_port() if port is None else port
    full_env = {**os.environ, "ZENGINE_SERVER__PORT": str(port), **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zengine.cli", "serve", "--config", str(config), *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(_answers(f"{base}/livez"), "zengine", log, proc, timeout=start_timeout)
        yield proc, base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_available() -> None:
    if not Path(NGINX).exists() or shutil.which("nginx") is None:
        service_missing("nginx is not installed (apt-get install nginx-light)")


@contextmanager
def nginx(prefix: Path, site: str, probe_url: str, ca: ssl.SSLContext
          ) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's nginx in the foreground with ``site`` included in its ``http {}`` block."""
    nginx_available()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "site.conf").write_text(site)
    # As root the workers run as an unprivileged user: let them reach the temporary paths.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/main.error.log error;\n"
        "events { worker_connections 128; }\n"
        "http {\n"
        f"    client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n    access_log {prefix}/main.access.log;\n"
        f"    include {prefix}/site.conf;\n}}\n")
    log = prefix / "nginx.out"
    base = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
            str(prefix / "startup.error.log")]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, f"nginx -t refused the recipe:\n{check.stderr}"
    with log.open("ab") as out:
        proc = subprocess.Popen(base, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(_answers(probe_url, verify=ca), "nginx", log, proc)
        yield proc
    finally:
        stop(proc)
