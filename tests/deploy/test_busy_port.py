"""A second server on a busy port: one clear line, no traceback, no ``zengine.started``."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE_CONFIG


@pytest.mark.subprocess
def test_serve_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "zengine.cli", "serve", "--config", str(EXAMPLE_CONFIG),
             "--port", str(port)], capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in output
    assert "Traceback" not in output and "zengine.started" not in output
    assert len(output.strip().splitlines()) <= 3, output
