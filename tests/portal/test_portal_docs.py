"""The portal section of docs/onboarding.md works as written."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest
from argon2 import PasswordHasher

from tests.conftest import ROOT
from tests.serverproc import running_server
from zengine.cli import main

DOC = (ROOT / "docs" / "onboarding.md").read_text(encoding="utf-8")
SECTION = DOC.split("## The self-service page", 1)[1]


def _blocks(text: str, kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


@pytest.mark.subprocess
def test_portal_section_of_onboarding(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    users_toml, config_toml = _blocks(DOC, "toml")[:2]
    [portal_toml] = _blocks(SECTION, "toml")
    [make_key] = _blocks(SECTION, "sh")
    key = tmp_path / "portal.key"
    subprocess.run(["bash", "-ec", make_key.replace("/etc/zengine/portal.key", str(key))],
                   check=True)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text(encoding="utf-8").strip()) >= 32
    digest = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    (tmp_path / "users.toml").write_text(
        re.sub(r'password_hash = "[^"]*"', f'password_hash = "{digest}"', users_toml),
        encoding="utf-8")
    (tmp_path / "users.toml").chmod(0o600)
    config = tmp_path / "zengine.toml"
    config.write_text(
        config_toml.replace("/var/lib/zengine/tokens.db", str(tmp_path / "t.db"))
        + "\n" + portal_toml.replace("/etc/zengine/portal.key", str(key)), encoding="utf-8")
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "portal" in out and "warning" not in out, out
    with running_server(config, tmp_path) as server:
        page = httpx.get(f"{server.base}/portal")
    assert page.status_code == 200
    assert "<title>Sign in · Example Telecom</title>" in page.text
