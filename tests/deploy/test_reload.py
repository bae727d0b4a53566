"""Reload under load, on every engine and with several workers: no request fails, the old
password stops working in every worker, and a broken config keeps the running one. A real
server process, real signals, the real ``zengine reload`` command and its pid file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.deploy.processes import free_port, zengine_server
from zengine.passwords import Passwords, PasswordSettings

OLD, NEW = "wonderland", "looking-glass-42"


def login(client: httpx.Client, base: str, password: str) -> httpx.Response:
    return client.get(f"{base}/id.php", params={"username": "alice", "password": password,
                                                "version": "1.14"})


def events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"{name}"' in line:
            try:
                found.append(json.loads(line[line.index("{"):]))
            except ValueError:
                continue
    return [event for event in found if event.get("event") == name]


def wait_for_pids(log: Path, name: str, count: int) -> set[object]:
    """Until ``count`` different processes logged ``name`` (every worker did it)."""
    deadline = time.monotonic() + 180
    while len(pids := {e.get("pid") for e in events(log, name)}) < count:
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        time.sleep(0.1)
    return pids


def zengine(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zengine.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, check=False)


@pytest.mark.subprocess
@pytest.mark.timeout(900)  # a login costs seconds when the shared machine is busy
@pytest.mark.parametrize(("engine", "workers"), [
    ("hypercorn", 1), ("hypercorn", 2), ("granian", 2), ("uvicorn", 1), ("uvicorn", 2)])
def test_reload_under_load_reaches_every_worker_without_failing_a_request(
        tmp_path: Path, engine: str, workers: int) -> None:
    for name in ("zengine.example.toml", "users.example.toml"):
        shutil.copy(EXAMPLE_CONFIG.parent / name, tmp_path / name)
    config, users = tmp_path / "zengine.example.toml", tmp_path / "users.example.toml"
    pid_file = tmp_path / "zengine.pid"
    log = tmp_path / "serve.log"
    outcomes: list[str] = []
    stop = threading.Event()

    def load(base: str) -> None:
        # Bounded: at most 2,000 requests or until stopped; every answer is recorded.
        with httpx.Client(timeout=60) as client:
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
                time.sleep(0.01)  # looping, not flooding: the machine is shared

    # Cheap hashes (argon2id at its minimum cost) for both passwords: the test is about the
    # reload, and every login verifies one.
    cheap = Passwords(PasswordSettings(time_cost=1, memory_kib=64, parallelism=1))
    text = users.read_text()
    old_hash = text.split('password_hash = "', 1)[1].split('"', 1)[0]
    users.write_text(text.replace(old_hash, cheap.hash(OLD), 1))
    # The load sends a wrong password every other request, each one a slow verification: at
    # the guard's default flood limit (600 verifications per 10 s per tenant) a fast machine
    # gets 429s, which this test would count as failed requests. The test is about the reload.
    env = {"ZENGINE_AUTH__FAILURE_FLOOR_MS": "0", "ZENGINE_SERVER__ENGINE": engine,
           "ZENGINE_SERVER__WORKERS": str(workers), "ZENGINE_SERVER__PID_FILE": str(pid_file),
           "ZENGINE_PLUGINS__GUARD__TENANT_MAX_VERIFICATIONS": "10000000"}
    # Generous timeouts: a correct server on this shared machine can take a minute to start.
    with zengine_server(config, log, env=env, start_timeout=240) as (proc, base), \
            httpx.Client(timeout=60) as c:
        assert pid_file.read_text().strip() == str(proc.pid)
        assert b"<account>" in login(c, base, OLD).content
        clients = [threading.Thread(target=load, args=(base,)) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            text = users.read_text()
            old_hash = text.split('password_hash = "', 1)[1].split('"', 1)[0]
            users.write_text(text.replace(old_hash, cheap.hash(NEW), 1))
            done = zengine("reload", "--config", str(config), env=env)
            assert done.returncode == 0, done.stderr
            assert f"pid {proc.pid}" in done.stderr
            reloaded = wait_for_pids(log, "zengine.reloaded", workers)
            if workers > 1:
                assert proc.pid not in reloaded  # the workers reloaded, not the parent
            # Fresh connections, spread over the workers: every one refuses the old password.
            for _ in range(4 * workers):
                with httpx.Client(timeout=60) as fresh:
                    assert b"<error" in login(fresh, base, OLD).content
                    assert b"<account>" in login(fresh, base, NEW).content
            # A broken config (`zengine reload` refuses it, see below; `kill -HUP` does not): the
            # running config stays, and every worker says why.
            config.write_text(config.read_text() + "\n[server\n")
            os.kill(proc.pid, signal.SIGHUP)
            wait_for_pids(log, "zengine.reload_failed", workers)
            for _ in range(2 * workers):
                with httpx.Client(timeout=60) as fresh:
                    assert b"<account>" in login(fresh, base, NEW).content
            time.sleep(0.5)
        finally:
            stop.set()
            for client in clients:
                client.join(timeout=60)
        assert proc.poll() is None, "the server died"
        # A graceful stop takes its time on a busy machine (workers finish, then the parent).
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert not pid_file.exists(), "serve left its pid file behind"
    failed = [o for o in outcomes if o != "ok"]
    assert len(outcomes) >= 20 and not failed, (len(outcomes), failed[:5])
    text = log.read_text()
    assert "not valid TOML" in text
    assert NEW not in text and OLD not in text


def test_reload_refuses_a_missing_or_stale_pid_file(tmp_path: Path) -> None:
    for name in ("zengine.example.toml", "users.example.toml"):
        shutil.copy(EXAMPLE_CONFIG.parent / name, tmp_path / name)
    config = str(tmp_path / "zengine.example.toml")
    pid_file = tmp_path / "zengine.pid"
    # A config that would not load is refused before any pid file is looked at.
    (tmp_path / "broken.toml").write_text("[server\n")
    broken = zengine("reload", "--config", str(tmp_path / "broken.toml"), env={})
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr, broken.stderr
    none = zengine("reload", "--config", config, env={})
    assert none.returncode == 2 and "no pid file" in none.stderr and "pid_file" in none.stderr
    missing = zengine("reload", "--config", config, "--pid-file", str(pid_file), env={})
    assert missing.returncode == 1 and f"pid file {pid_file} does not exist" in missing.stderr
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n")
    stale = zengine("reload", "--config", config, env={"ZENGINE_SERVER__PID_FILE": str(pid_file)})
    assert stale.returncode == 1 and f"stale pid file {pid_file}" in stale.stderr, stale.stderr
    assert "Traceback" not in stale.stderr + missing.stderr + none.stderr
    # A live process that is not zengine serve (the pid was reused) is stale too: not signalled.
    pid_file.write_text(f"{os.getpid()}\n")
    reused = zengine("reload", "--config", config, "--pid-file", str(pid_file), env={})
    assert reused.returncode == 1 and "stale pid file" in reused.stderr


@pytest.mark.subprocess
def test_serve_replaces_a_stale_pid_file_and_refuses_a_live_one(tmp_path: Path) -> None:
    for name in ("zengine.example.toml", "users.example.toml"):
        shutil.copy(EXAMPLE_CONFIG.parent / name, tmp_path / name)
    config = tmp_path / "zengine.example.toml"
    pid_file = tmp_path / "zengine.pid"
    pid_file.write_text("999999999\n")  # no such process
    with zengine_server(config, tmp_path / "serve.log",
                        args=("--pid-file", str(pid_file))) as (proc, _):
        assert pid_file.read_text().strip() == str(proc.pid)
        second = zengine("serve", "--config", str(config), "--pid-file", str(pid_file),
                         env={"ZENGINE_SERVER__PORT": str(free_port())})
        assert second.returncode == 1, second.stderr
        assert f"belongs to a running zengine serve (pid {proc.pid})" in second.stderr
        assert pid_file.read_text().strip() == str(proc.pid)
    assert not pid_file.exists()


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
