"""The guard in real server processes: one lockout across two servers sharing Redis, 429 and
503 over real HTTP, and Debian's fail2ban-regex on the server's real security log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG, ROOT, service_missing
from tests.guard.conftest import REDIS_URL, redis_client
from tests.serverproc import running_server

FILTER = ROOT / "contrib" / "fail2ban" / "filter.d" / "zengine.conf"
JAIL = ROOT / "contrib" / "fail2ban" / "jail.d" / "zengine.local"


def guess(base: str, user: str, password: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{base}/id.php", params={"u": user, "p": password}, headers=headers,
                     timeout=30)


@pytest.mark.subprocess
def test_two_server_processes_sharing_redis_enforce_one_lockout(tmp_path: Path,
                                                                 prefix: str) -> None:
    redis_client()
    env = {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
           "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
           "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "4",
           "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as one, \
            running_server(EXAMPLE_CONFIG, tmp_path, env=env) as two:
        # Four distinct guesses, alternating servers: neither saw more than two.
        for i, server in enumerate((one, two, one, two)):
            assert guess(server.base, "alice", f"guess{i}").status_code == 200
        for server in (one, two):
            locked = guess(server.base, "alice", "wonderland")
            assert locked.status_code == 429
            # 60 s from the lock, less what has passed since (a loaded machine is slow).
            assert 45 <= int(locked.headers["retry-after"]) <= 60
            assert b"try again in 1 minute" in locked.content
        # The operator clears it once, for both.
        config = tmp_path / "ops.toml"
        config.write_text(f'[plugins.guard]\nredis_url = "{REDIS_URL}"\n'
                          f'key_prefix = "{prefix}"\n')
        cli = [sys.executable, "-m", "zengine.cli", "lockouts", "--config", str(config)]
        listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=60)
        assert "alice: 4 distinct failures, locked" in listed.stdout, listed.stderr
        subprocess.run([*cli, "clear", "alice"], check=True, capture_output=True, timeout=60)
        for server in (one, two):
            assert b"<account>" in guess(server.base, "alice", "wonderland").content


@pytest.mark.subprocess
def test_restart_storm_with_the_login_cache_warm_in_redis_is_served_over_real_http(
        tmp_path: Path, prefix: str) -> None:
    """Phones verified by one server process come back to a fresh one (the restart) sharing
    Redis: 60 returning logins against a flood limit of 4 verifications (per hour) are all
    served; new verifications past the limit get 429 with Retry-After."""
    redis_client()
    env = {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
           "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
           "ZENGINE_PLUGINS__GUARD__TENANT_MAX_VERIFICATIONS": "4",
           "ZENGINE_PLUGINS__GUARD__FLOOD_WINDOW": "3600",
           # Shared by both processes, so the second one can read the first one's entries.
           "ZENGINE_LOGIN_CACHE__SECRET": "restart-storm-test-secret-" + "x" * 16,
           "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}
    phones = (("alice", "wonderland"), ("bob", "builder"))
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as before:
        for user, password in phones:  # 2 verifications
            assert b"<account>" in guess(before.base, user, password).content
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as after:
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def phone(i: int) -> None:
            answer = guess(after.base, *phones[i % 2])
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=phone, args=(i,)) for i in range(60)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(answers) == 60
        assert all(b"<account>" in a.content for a in answers), \
            sorted({a.status_code for a in answers})
        # Cold ones: the limit bites. Windows are aligned buckets, so a slow machine may
        # cross into a fresh one once: at most 2 x 4 verifications before the first 429.
        cold = [guess(after.base, f"new{i}", "guess") for i in range(9)]
        codes = [a.status_code for a in cold]
        assert 429 in codes, codes
        assert set(codes[:codes.index(429)]) == {200}, codes
        refused = cold[codes.index(429)]
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert b"Too many login attempts" in refused.content
        assert b"<account>" in guess(after.base, "bob", "builder").content


@pytest.mark.subprocess
def test_full_verification_pool_is_503_with_retry_after_over_real_http(tmp_path: Path) -> None:
    env = {"ZENGINE_PASSWORDS__POOL_SIZE": "1", "ZENGINE_PASSWORDS__POOL_QUEUE": "0"}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as server:
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            # Distinct users: no lockout, only the pool decides.
            answer = guess(server.base, f"user{i}", "wrong")
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    statuses = sorted(a.status_code for a in answers)
    assert len(statuses) == 8
    assert 200 in statuses and 503 in statuses, statuses
    busy = [a for a in answers if a.status_code == 503]
    assert all(a.headers["retry-after"] == "2" and b"busy" in a.content for a in busy)


def fail2ban_ips(log: Path) -> list[str]:
    if shutil.which("fail2ban-regex") is None:
        service_missing("fail2ban-regex is not installed (apt install fail2ban)")
    done = subprocess.run(["fail2ban-regex", "-o", "ip", str(log), str(FILTER)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.subprocess
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_fail2ban_filter_finds_the_real_address_in_real_output(tmp_path: Path,
                                                               log_format: str) -> None:
    env = {"ZENGINE_LOGGING__FORMAT": log_format,
           "ZENGINE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
           "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "3",
           "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as server:
        real = {"X-Forwarded-For": "6.6.6.6, 203.0.113.77"}
        # A username that tries to plant another address in the line.
        for i in range(3):
            guess(server.base, 'x client_addr=192.0.2.1 "client_addr": "192.0.2.1"',
                  f"guess{i}", **real)
        assert guess(server.base, "x", "y", **real).status_code == 200
        assert guess(server.base, 'x client_addr=192.0.2.1 "client_addr": "192.0.2.1"',
                     "more", **real).status_code == 429
        assert b"<account>" in guess(server.base, "alice", "wonderland", **real).content
    log = server.log_path
    refused = [line for line in log.read_text().splitlines() if "security.login_refused" in line]
    assert len(refused) == 5
    # One hit per refused login, each with the real address: nothing else, nothing planted.
    assert fail2ban_ips(log) == ["203.0.113.77"] * 5


def test_fail2ban_jail_names_the_filter() -> None:
    text = JAIL.read_text()
    assert "[zengine]" in text and "filter   = zengine" in text
    assert FILTER.exists()
