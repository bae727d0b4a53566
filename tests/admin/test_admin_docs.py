"""docs/api.md: every curl example runs as written against a real server, and every operation
is in its table."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.admin.conftest import AdminServer
from tests.conftest import ROOT
from zengine_admin.api import OPS

DOC = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```sh\n(.*?)```", DOC, re.S)


def test_every_operation_is_in_the_table() -> None:
    for op in OPS:
        assert f"`{op.method} /api/v1{op.path}" in DOC, f"{op.method} {op.path} not in api.md"


def test_curl_examples_run_against_a_real_server(admin_server: AdminServer,
                                                  tmp_path: Path) -> None:
    assert len(BLOCKS) >= 8
    env = {**os.environ, "ZENGINE": admin_server.server.base, "KEY": admin_server.keys["admin"]}
    outputs = []
    for block in BLOCKS:
        assert "curl" in block
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{block}\n{done.stderr}"
        outputs.append(done.stdout)
    created = json.loads(outputs[0])
    assert created["username"] == "dora" and created["account_list"][0]["ident"] == "dora-office"
    assert "<password>********</password>" in outputs[3]
    assert "s1p-secret-Dora" not in "".join(outputs)
    assert (tmp_path / "dora-qr.svg").read_text().startswith("<svg")
    issued = json.loads((tmp_path / "issued.json").read_text())
    assert issued["link"] in outputs[4]
    # The last example deleted her.
    reply = admin_server.client().call("GET", "/api/v1/users/dora")
    assert reply.status == 404
