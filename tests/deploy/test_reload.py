"""SIGHUP reloads config and users file under load: no request fails, the old password stops
working, and a broken config keeps the running one. A real server process, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.deploy.processes import zengine_server
from zengine.passwords import Passwords

OLD, NEW = "wonderland", "looking-glass-42"


def login(client: httpx.Client, base: str, password: str) -> httpx.Response:
    return client.get(f"{base}/id.php", params={"username": "alice", "password": password,
                                                "version": "1.14"})


@pytest.mark.subprocess
def test_sighup_reloads_users_under_load_without_failing_a_request(tmp_path: Path) -> None:
    for name in ("zengine.example.toml", "users.example.toml"):
        shutil.copy(EXAMPLE_CONFIG.parent / name, tmp_path / name)
    config, users = tmp_path / "zengine.example.toml", tmp_path / "users.example.toml"
    log = tmp_path / "serve.log"
    outcomes: list[str] = []
    stop = threading.Event()

    def load(base: str) -> None:
        # Bounded: at most 2,000 requests or until stopped; every answer is recorded.
        with httpx.Client(timeout=10) as client:
            for _ in range(2000):
                if stop.is_set():
                    return
                try:
                    reply = login(client, base, OLD if len(outcomes) % 2 else NEW)
                except httpx.TransportError as exc:
                    outcomes.append(f"transport error {type(exc).__name__}")
                    continue
                outcomes.append("ok" if reply.status_code == 200 and b"<" in reply.content
                                else f"status {reply.status_code}")

    env = {"ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}
    with zengine_server(config, log, env=env) as (proc, base), httpx.Client(timeout=10) as c:
        assert b"<account>" in login(c, base, OLD).content
        workers = [threading.Thread(target=load, args=(base,)) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            text = users.read_text()
            old_hash = text.split('password_hash = "', 1)[1].split('"', 1)[0]
            users.write_text(text.replace(old_hash, Passwords().hash(NEW), 1))
            os.kill(proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 20
            while b"<account>" not in login(c, base, NEW).content:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            assert b"<error" in login(c, base, OLD).content  # the old password is refused
            # A broken config: the running one stays, and the log says why.
            config.write_text(config.read_text() + "\n[server\n")
            os.kill(proc.pid, signal.SIGHUP)
            deadline = time.monotonic() + 20
            while "zengine.reload_failed" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            assert b"<account>" in login(c, base, NEW).content
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
        assert proc.poll() is None, "the server died"
    failed = [o for o in outcomes if o != "ok"]
    assert len(outcomes) >= 20 and not failed, (len(outcomes), failed[:5])
    text = log.read_text()
    assert "zengine.reloaded" in text and "not valid TOML" in text
    assert NEW not in text and OLD not in text


@pytest.mark.subprocess
def test_sighup_adds_a_tenant_without_a_restart(tmp_path: Path) -> None:
    from tests.tenants_kit import PASSWORDS, SIP, config, served_sip, users_file

    cfg = config(tmp_path)
    log = tmp_path / "serve.log"
    initech = {"host": "prov.initech.example"}
    params = {"username": "alice", "password": PASSWORDS["acme"]}
    with zengine_server(cfg, log) as (proc, base), httpx.Client(timeout=10) as client:
        assert b"Wrong username or password" in client.get(
            f"{base}/id.php", params=params, headers=initech).content
        # The new tenant: its users file (acme's alice, as a stand-in) and its table.
        users_file(tmp_path / "initech-users.toml", "acme")
        cfg.write_text(cfg.read_text() + '\n[tenants.initech]\nhosts = ["prov.initech.example"]'
                       '\n[tenants.initech.plugins.static]\nusers_file = "initech-users.toml"\n')
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while not served_sip(client.get(f"{base}/id.php", params=params,
                                        headers=initech).content):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        # The tenants that were there carry on, each with its own alice.
        acme = client.get(f"{base}/id.php", params=params,
                          headers={"host": "prov.acme.example"})
        assert SIP["acme"] in acme.text
        assert proc.poll() is None
    assert "zengine.reloaded" in log.read_text()
