"""docs/onboarding.md works as written: its users file and config, its commands, a real
server, and the token URL Zoiper would fetch."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2 as httpx
import pytest
from argon2 import PasswordHasher
from lxml import etree

from tests.conftest import ROOT
from tests.serverproc import running_server
from zengine.cli import main

DOC = (ROOT / "docs" / "onboarding.md").read_text(encoding="utf-8")


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, re.S)


@pytest.mark.subprocess
def test_onboarding_walkthrough(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The first two: the users file and the config (the portal section adds its own).
    users_toml, config_toml = _blocks("toml")[:2]
    digest = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    users_toml = re.sub(r'password_hash = "[^"]*"', f'password_hash = "{digest}"', users_toml)
    (tmp_path / "users.toml").write_text(users_toml, encoding="utf-8")
    config_toml = config_toml.replace("/var/lib/zengine/tokens.db", str(tmp_path / "t.db"))
    config = tmp_path / "zengine.toml"
    config.write_text(config_toml, encoding="utf-8")
    commands = [line for block in _blocks("sh") for line in block.splitlines()
                if line.startswith("zengine ")]
    assert "zengine check-config --config /etc/zengine/zengine.toml" in commands

    def run(command: str) -> str:
        argv = command.split("#")[0].split()[1:]
        argv = [str(config) if a == "/etc/zengine/zengine.toml" else a for a in argv]
        if "--config" not in argv:
            argv += ["--config", str(config)]
        assert main(argv) == 0, capsys.readouterr().err
        return capsys.readouterr().out

    run("zengine check-config --config /etc/zengine/zengine.toml")
    issue = next(c for c in commands if c.startswith("zengine tokens issue"))
    out = run(issue)
    token = re.search(r"^token:\s+(\S+)$", out, re.M)
    link = re.search(r"^link:\s+(https://oem\.zoiper\.com/qr-howto\.php\S+)$", out, re.M)
    assert token and link and link[1].endswith(f"&t={token[1]}")
    with running_server(config, tmp_path) as server:
        reply = httpx.get(f"{server.base}/token?id={token[1]}")
    root = etree.fromstring(reply.content)
    assert root.findtext("accounts/account/password") == "Tea&Cakes<3"
    assert root.findtext("accounts/account/authentication_username") == "alice-auth"
    listed = run(next(c for c in commands if c.startswith("zengine tokens list")))
    assert re.search(r"alice-office\s+used\s+1/1", listed), listed
    for command in commands:
        if command.startswith(("zengine tokens revoke --user", "zengine tokens purge")):
            run(command)
