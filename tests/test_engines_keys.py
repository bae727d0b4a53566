"""Every ``[server] engine`` takes the same keys: ``host``, ``port``, ``workers`` and
``access_log`` are honoured by the engine that was named (and really is the one serving); the
TLS keys too (tests/deploy/test_tls.py), but for ``tls_http2``, which uvicorn refuses in one
line."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import running_server
from zengine.errors import ConfigError
from zengine.server import serve
from zengine.settings import load_settings

#: The loggers only each engine writes to: its own (startup, shutdown) and its access log.
OWN_LOGGER = {"hypercorn": "hypercorn.error", "granian": "_granian", "uvicorn": "uvicorn.error"}
ACCESS_LOGGER = {"hypercorn": "hypercorn.access", "granian": "granian.access",
                 "uvicorn": "uvicorn.access"}
LOGIN = "/id.php?username=alice&password=wonderland&version=1.14"


def loggers(output: str) -> list[str]:
    return [json.loads(line).get("logger", "") for line in output.splitlines()
            if line.startswith("{")]


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ["hypercorn", "granian", "uvicorn"])
def test_engine_honours_host_workers_and_access_log(tmp_path: Path, engine: str) -> None:
    env = {"ZENGINE_SERVER__ENGINE": engine, "ZENGINE_SERVER__WORKERS": "2",
           "ZENGINE_SERVER__ACCESS_LOG": "false"}
    # 127.0.0.2: a loopback address other than the default host, so a host left unused shows.
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env, host="127.0.0.2") as server:
        assert refused("127.0.0.1", server.port)
        for _ in range(3):
            assert httpx.get(server.base + LOGIN).status_code == 200
    time.sleep(0.2)  # worker processes flush their last lines on the way out
    output = server.output()
    seen = loggers(output)
    assert OWN_LOGGER[engine] in seen, output
    # Each worker process builds its app once: two workers, two starts.
    assert output.count('"zengine.started"') == 2, output
    assert output.count('"provision.request"') == 3, output
    assert not [name for name in seen if name.endswith(".access")], output

    with running_server(EXAMPLE_CONFIG, tmp_path, env={"ZENGINE_SERVER__ENGINE": engine}) as one:
        assert httpx.get(one.base + LOGIN).status_code == 200
    time.sleep(0.2)
    output = one.output()
    assert output.count('"zengine.started"') == 1, output
    access = [json.loads(line)["event"] for line in output.splitlines()
              if line.startswith("{") and json.loads(line).get("logger") == ACCESS_LOGGER[engine]]
    assert any("GET /id.php " in line for line in access), output
    assert not any("?" in line or "wonderland" in line for line in access), access


def test_http2_with_uvicorn_is_one_config_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn has no HTTP/2: ``tls_http2 = true`` with it is refused, naming the key and the
    engine, before any engine loads (TLS itself is every engine's: tests/deploy/test_tls.py)."""
    (tmp_path / "cert.pem").write_text("unused\n")
    (tmp_path / "key.pem").write_text("unused\n")
    settings = load_settings(EXAMPLE_CONFIG, environ={
        "ZENGINE_SERVER__ENGINE": "uvicorn", "ZENGINE_SERVER__TLS_HTTP2": "true",
        "ZENGINE_SERVER__TLS_CERTIFICATE": str(tmp_path / "cert.pem"),
        "ZENGINE_SERVER__TLS_KEY": str(tmp_path / "key.pem")})

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine was loaded")

    monkeypatch.setattr("zengine.server.load_engine", never)
    with pytest.raises(ConfigError, match=r"tls_http2 = true: engine 'uvicorn' speaks HTTP/1\.1"):
        serve(settings, config_path=None, port=0)
