"""A hung database (a proxy that stops forwarding on open connections, a SIGSTOPped proxy
process, a black hole) answers 503 within statement_timeout, recovers within 1 s once it is
back, and never starves requests that do not touch it."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

import zengine_sql
from tests.conftest import EXAMPLE_CONFIG, ROOT
from tests.sql.conftest import PASSWORD, sql_config
from tests.sql.tcpproxy import TcpProxy
from zengine.app import create_app
from zengine.runtime import Runtime
from zengine.settings import load_settings, settings_from_mapping
from zengine.testing import plugin_list
from zengine_sql import admin, specs

SQL_BACKENDS = ("postgres", "mariadb")
STATEMENT_TIMEOUT = 2
#: Thread scheduling and argon2 on a loaded two-core machine.
SLACK = 1.5
RECOVERY = 1.0
POOL_TIMEOUT = 2  # sql_config's


@pytest.fixture
def user(own_db: URL, runtime_for: Callable[..., Runtime], password_hash: str) -> str:
    state = zengine_sql.get_state(runtime_for(sql_config(own_db)))
    assert state is not None
    admin.add_user(state, specs.UserSpec(
        username="olga", password_hash=password_hash,
        accounts=[specs.AccountSpec(ident="o1", sip_username="olga", sip_password="sip-olga",
                                    domain="sip.example.net")]))
    return "olga"


def _client(url: URL, port: int, **extra: Any) -> TestClient:
    config = sql_config(url.set(host="127.0.0.1", port=port), connect_timeout=2,
                        statement_timeout=STATEMENT_TIMEOUT, **extra)
    settings = settings_from_mapping({"plugins": {"sql": config}}, environ={})
    return TestClient(create_app(settings, load_entrypoints=False,
                                 plugins=plugin_list("zoiper", "sql")))


def _get(client: TestClient, username: str) -> tuple[int, float]:
    start = time.perf_counter()
    reply = client.get("/provision", params={"username": username, "password": PASSWORD})
    assert b"<" in reply.content and reply.headers["cache-control"] == "no-store"
    return reply.status_code, time.perf_counter() - start


def _recovery(client: TestClient, username: str) -> float:
    """Seconds from now until a login succeeds, trying every 50 ms."""
    start = time.perf_counter()
    while time.perf_counter() - start < 10:
        if _get(client, username)[0] == 200:
            return time.perf_counter() - start
        time.sleep(0.05)
    pytest.fail("no recovery within 10 s")


def _hang_and_recover(client: TestClient, user: str, hang: Callable[[], None],
                      back: Callable[[], None]) -> None:
    assert _get(client, user)[0] == 200  # a pooled connection now exists
    hang()
    for _ in range(2):  # the pooled connection, then a fresh one
        status, elapsed = _get(client, user)
        assert status == 503, status
        assert elapsed < STATEMENT_TIMEOUT + SLACK, elapsed
    back()
    assert _recovery(client, user) < RECOVERY


def test_stalled_connections_are_cut_at_the_deadline(own_db: URL, user: str) -> None:
    proxy = TcpProxy((str(own_db.host), int(own_db.port or 0)))
    try:
        with _client(own_db, proxy.port) as client:
            _hang_and_recover(client, user, proxy.stall, proxy.restore)
            _hang_and_recover(client, user, proxy.blackhole, proxy.restore)
    finally:
        proxy.close()


def _stop(pid: int) -> None:
    """SIGSTOP, and wait until every thread of the process really is stopped."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    tasks = f"/proc/{pid}/task"
    while time.monotonic() < deadline:
        states = [Path(f"{tasks}/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                  for tid in os.listdir(tasks)]
        if all(state == "T" for state in states):
            return
        time.sleep(0.01)
    pytest.fail(f"process {pid} did not stop")


def test_sigstopped_server_process(own_db: URL, user: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.sql.tcpproxy", str(own_db.host),
                             str(own_db.port)], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with _client(own_db, port) as client:
            _hang_and_recover(client, user, lambda: _stop(proc.pid),
                              lambda: os.kill(proc.pid, signal.SIGCONT))
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_hung_sql_backend_does_not_starve_static_logins(own_db: URL, user: str) -> None:
    """60 logins hang on SQL at once (more than the 40 worker threads); static logins
    alongside are served as if nothing happened, and the SQL ones get a quick 503."""
    proxy = TcpProxy((str(own_db.host), int(own_db.port or 0)))
    base = load_settings(EXAMPLE_CONFIG, environ={})
    config = sql_config(own_db.set(host="127.0.0.1", port=proxy.port), connect_timeout=2,
                        statement_timeout=STATEMENT_TIMEOUT, pool_size=2, max_overflow=0)
    settings = dataclasses.replace(
        base, auth=base.auth.model_copy(update={"chain": ("static", "sql")}),
        plugin_tables={**base.plugin_tables, "sql": config})
    app = create_app(settings, load_entrypoints=False,
                     plugins=plugin_list("zoiper", "static", "sql"))
    try:
        with TestClient(app) as client:
            assert _get(client, user)[0] == 200
            static_times: list[float] = []
            proxy.stall()
            stop = threading.Event()

            def static_logins() -> None:
                while not stop.is_set():
                    start = time.perf_counter()
                    reply = client.get("/id.php", params={"u": "alice", "p": "wonderland",
                                                          "v": "1.14"})
                    assert reply.status_code == 200
                    static_times.append(time.perf_counter() - start)

            with ThreadPoolExecutor(64) as pool:
                watcher = pool.submit(static_logins)
                sql = [pool.submit(_get, client, user) for _ in range(60)]
                results = [future.result() for future in sql]
                stop.set()
                watcher.result()
    finally:
        proxy.close()
    assert all(status == 503 for status, _ in results), results
    # At worst: wait pool_timeout for a slot, then run into the deadline.
    assert max(elapsed for _, elapsed in results) < POOL_TIMEOUT + STATEMENT_TIMEOUT + 2 * SLACK
    assert len(static_times) >= 3, static_times
    assert max(static_times) < 2.0, static_times
