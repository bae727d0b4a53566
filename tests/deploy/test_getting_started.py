"""docs/getting-started.md "Your own deployment", line by line, as an operator types it.

Two substitutions, both forced by this machine: the install lines are not re-run (the suite's
own interpreter already holds the installed package: its ``bin`` is what ``PATH`` points to),
and port 8080 becomes a free port (several engineers share the machine). ``HOME`` is a
temporary directory, so ``~`` is too. Everything else runs exactly as written: the real
``zengine`` console script, a real server process, real curl.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, service_missing
from tests.deploy.processes import free_port, stop, wait_until

DOC = ROOT / "docs" / "getting-started.md"
PASSWORD = "YOUR-PASSWORD"


def steps() -> list[str]:
    text = DOC.read_text()
    block = re.search(r"<!-- steps -->\n```sh\n(.*?)```\n<!-- /steps -->", text, re.S)
    assert block, "docs/getting-started.md lost its <!-- steps --> block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


@pytest.mark.subprocess
def test_getting_started_steps_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        service_missing("curl is not installed")
    lines = steps()
    assert lines[0] == "python3 -m venv ~/zengine-venv"
    assert lines[1].startswith("~/zengine-venv/bin/pip install ")
    assert lines[2] == 'export PATH="$HOME/zengine-venv/bin:$PATH"'
    port = str(free_port())
    home = tmp_path / "home"
    home.mkdir()
    bindir = Path(sys.executable).parent
    assert (bindir / "zengine").exists(), "the zengine console script is not installed"
    env = {**os.environ, "HOME": str(home), "PATH": f"{bindir}:{os.environ['PATH']}"}
    env.pop("ZENGINE_CONFIG", None)
    server: subprocess.Popen[bytes] | None = None
    log = tmp_path / "serve.log"
    try:
        for line in lines[3:]:
            command = line.replace("8080", port).replace("~/", f"{home}/")
            if command.endswith("&"):
                args = shlex.split(command[:-1])
                assert args[:2] == ["zengine", "serve"]
                with log.open("wb") as out:
                    server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                              env={**env, "ZENGINE_SERVER__PORT": port})
                wait_until(lambda: _answers(port), "zengine serve", log, server)
                continue
            result = subprocess.run(shlex.split(command), input=f"{PASSWORD}\n", env=env,
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
            last = result.stdout
        assert server is not None, "the steps never start the server"
    finally:
        if server is not None:
            stop(server)
    etc = home / "zengine-etc"
    assert {p.name: p.stat().st_mode & 0o777 for p in etc.iterdir()} == {
        "zengine.toml": 0o600, "users.toml": 0o600, "portal-session.key": 0o600}
    assert etc.stat().st_mode & 0o777 == 0o700
    # The curl line got alice's document with the SIP password init generated for her.
    assert "<account>" in last and "<username>alice</username>" in last
    sip_password = re.search(r'sip_password = "([^"]+)"', (etc / "users.toml").read_text())
    assert sip_password and sip_password.group(1) in last
    assert PASSWORD not in (etc / "users.toml").read_text()
    assert PASSWORD not in log.read_text()


def _answers(port: str) -> bool:
    import httpx2 as httpx

    try:
        httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1)
    except httpx.TransportError:
        return False
    return True
