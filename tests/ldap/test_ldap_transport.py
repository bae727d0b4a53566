"""TLS, failover, outage and recovery, pooling: the transport side of the LDAP backend."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import trustme
from lxml import etree
from pydantic import SecretStr

import zengine_ldap
from tests.ldap import schema
from tests.ldap.conftest import SlapdFactory, make_settings, search_table
from tests.ldap.slapd import Slapd
from zengine.errors import BackendUnavailable
from zengine.models import Identity, Rejected
from zengine.pipeline import handle
from zengine.request import build_request
from zengine.runtime import Runtime, build_runtime
from zengine.testing import plugin_list
from zengine_ldap.auth import LdapBackend

pytestmark = pytest.mark.ldap
Build = Callable[[dict[str, Any]], Runtime]
ALICE = SecretStr(schema.PASSWORDS["alice"])


def backend(runtime: Runtime) -> LdapBackend:
    found = runtime.state["ldap"]
    assert isinstance(found, LdapBackend)
    return found


def test_starttls_is_used_and_connections_are_reused(slapd: Slapd, ldap_runtime: Build) -> None:
    ldap = backend(ldap_runtime(search_table(slapd)))
    for _ in range(20):
        assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    # One connection per pool for 20 sequential logins: no connect or bind per request.
    assert ldap.search_pool.opened == ldap.bind_pool.opened == 1
    pooled = ldap.search_pool._idle[0].conn
    assert pooled.tls_started and pooled.socket.version() in ("TLSv1.2", "TLSv1.3")


def test_ldaps(slapd: Slapd, ldap_runtime: Build) -> None:
    ldap = backend(ldap_runtime(search_table(slapd, servers=[slapd.ldaps_url], start_tls=False)))
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    assert ldap.authenticate("alice", SecretStr("wrong")) == Rejected("ldap", "wrong password")


@pytest.mark.parametrize("tls", ["starttls", "ldaps"])
def test_certificate_is_verified_by_default(slapd: Slapd, ldap_runtime: Build,
                                            tmp_path: Any, tls: str) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    servers = [slapd.url] if tls == "starttls" else [slapd.ldaps_url]
    for ca_file in (None, str(other_ca)):  # system CAs, then a CA that did not sign it
        table = search_table(slapd, servers=servers, start_tls=tls == "starttls",
                             ca_file=ca_file)
        if ca_file is None:
            del table["ca_file"]
        ldap = backend(ldap_runtime(table))
        with pytest.raises(BackendUnavailable, match=r"(?i)certificate verify failed"):
            ldap.authenticate("alice", ALICE)
    table = search_table(slapd, servers=servers, start_tls=tls == "starttls",
                         ca_file=str(other_ca), verify=False)
    assert isinstance(backend(ldap_runtime(table)).authenticate("alice", ALICE), Identity)


def test_host_name_is_checked(slapd_factory: SlapdFactory, ldap_runtime: Build) -> None:
    misnamed = slapd_factory("misnamed", cert_names=("ldap.other.example",))
    ldap = backend(ldap_runtime(search_table(misnamed, servers=[misnamed.ldaps_url],
                                             start_tls=False)))
    with pytest.raises(BackendUnavailable, match=r"(?i)match|mismatch"):
        ldap.authenticate("alice", ALICE)


def test_wrong_service_password_is_503_without_the_secret(
        slapd: Slapd, ldap_runtime: Build, capsys: pytest.CaptureFixture[str]) -> None:
    ldap = backend(ldap_runtime(search_table(slapd, service_password="Wr0ng-Service-PW")))
    with pytest.raises(BackendUnavailable) as caught:
        ldap.authenticate("alice", ALICE)
    output = capsys.readouterr()
    assert "Wr0ng-Service-PW" not in str(caught.value) + output.out + output.err
    assert "ldap.service_bind_failed" in output.out + output.err


def test_failover_when_first_server_stops(slapd_factory: SlapdFactory, slapd: Slapd,
                                          ldap_runtime: Build) -> None:
    first = slapd_factory("failover-first")
    # retry_after far past the test: at the suite's 1 s a stall after the failover could end
    # the first server's time out before the check of the order below.
    ldap = backend(ldap_runtime(search_table(slapd, servers=[first.url, slapd.url],
                                             retry_after=30)))
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    assert ldap.search_pool._idle[0].endpoint.url == first.url
    first.stop()
    started = time.monotonic()
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    assert time.monotonic() - started < 1.0
    assert ldap.search_pool._idle[0].endpoint.url == slapd.url
    # The first server now sits out retry_after: the next login goes straight to the second.
    assert [e.url for e in ldap.servers.candidates()] == [slapd.url, first.url]


@pytest.fixture
def hung_server() -> Iterator[str]:
    """Accepts TCP connections (the kernel does, from the backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_failover_from_a_server_that_hangs(hung_server: str, slapd: Slapd,
                                           ldap_runtime: Build) -> None:
    # Margins for a loaded CI box: the hanging server sits out the whole test (at the suite's
    # retry_after = 1 s, a slow first login left it little of that second), and asking it
    # again would cost 2 s, told apart from a direct login by more than 0.5 s.
    ldap = backend(ldap_runtime(search_table(slapd, servers=[hung_server, slapd.url],
                                             receive_timeout=2, retry_after=30)))
    started = time.monotonic()
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    assert time.monotonic() - started < 3.5
    # Once marked down, the hanging server costs nothing.
    started = time.monotonic()
    assert isinstance(ldap.authenticate("bob", SecretStr(schema.PASSWORDS["bob"])), Identity)
    assert time.monotonic() - started < 1.5


def test_hanging_directory_is_503_within_the_timeout(hung_server: str, slapd: Slapd,
                                                     ldap_runtime: Build) -> None:
    ldap = backend(ldap_runtime(search_table(slapd, servers=[hung_server], receive_timeout=1)))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="no server answered"):
        ldap.authenticate("alice", ALICE)
    assert time.monotonic() - started < 2.5


def _provision(runtime: Runtime, username: str, password: str) -> tuple[int, bytes]:
    query = f"username={username}&password={password}&version=1.14".encode()
    reply = handle(lambda: build_request(path="/id.php", query=query, body=b"", headers={},
                                         client_addr="127.0.0.1", settings=runtime.settings),
                   runtime)
    return reply.status, reply.body


def test_outage_gives_503_and_recovery_needs_no_restart(slapd_factory: SlapdFactory) -> None:
    outage = slapd_factory("outage")
    runtime = build_runtime(make_settings(search_table(outage)), load_entrypoints=False,
                            plugins=[*plugin_list("zoiper"), ("ldap", zengine_ldap)])
    runtime.start()
    try:
        status, body = _provision(runtime, "alice", schema.PASSWORDS["alice"])
        assert status == 200 and b"alice-sip-secret" in body
        outage.stop()
        for _ in range(3):
            started = time.monotonic()
            status, body = _provision(runtime, "alice", schema.PASSWORDS["alice"])
            assert time.monotonic() - started < 1.0
            assert status == 503
            assert etree.fromstring(body).tag == "error"
        outage.start()
        status, body = _provision(runtime, "alice", schema.PASSWORDS["alice"])
        assert status == 200 and b"alice-sip-secret" in body
        status, body = _provision(runtime, "alice", "wrong")
        assert status == 200 and etree.fromstring(body).tag == "error"
    finally:
        runtime.stop()
        outage.stop()


def test_server_restart_is_invisible_to_users(slapd_factory: SlapdFactory,
                                              ldap_runtime: Build) -> None:
    restarted = slapd_factory("restart")
    ldap = backend(ldap_runtime(search_table(restarted, pool_size=3)))
    with ThreadPoolExecutor(max_workers=3) as pool:  # three idle connections per pool
        assert all(isinstance(r, Identity) for r in
                   pool.map(lambda _: ldap.authenticate("alice", ALICE), range(30)))
    idle_before = len(ldap.search_pool._idle)
    assert idle_before >= 2
    opened_before = ldap.search_pool.opened
    restarted.stop()
    restarted.start()
    # Every pooled socket is dead now. The first failure drops them all and the retry opens
    # a new connection: the user notices nothing.
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    assert len(ldap.search_pool._idle) == 1  # the stale ones are gone, not waiting to fail
    assert ldap.search_pool.opened == opened_before + 1


def test_pooled_connections_keep_no_password(slapd: Slapd, ldap_runtime: Build) -> None:
    ldap = backend(ldap_runtime(search_table(slapd)))
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    for pool in (ldap.search_pool, ldap.bind_pool):
        (pooled,) = pool._idle
        assert pooled.conn.password is None
        text = repr(pooled.conn) + str(pooled.conn) + repr(pool) + repr(ldap.servers.endpoints)
        assert schema.SERVICE_PASSWORD not in text and ALICE.get_secret_value() not in text


def test_pool_is_bounded_under_concurrency(slapd: Slapd, ldap_runtime: Build) -> None:
    ldap = backend(ldap_runtime(search_table(slapd, pool_size=2)))
    peak = 0
    lock = threading.Lock()

    def one(i: int) -> bool:
        nonlocal peak
        name = ("alice", "bob")[i % 2]
        result = ldap.authenticate(name, SecretStr(schema.PASSWORDS[name]))
        with lock:
            peak = max(peak, ldap.search_pool.open_connections, ldap.bind_pool.open_connections)
        return isinstance(result, Identity)

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(one, range(64)))
    assert peak <= 2
    assert ldap.search_pool.opened <= 2 and ldap.bind_pool.opened <= 2


def test_shutdown_closes_pools(slapd: Slapd) -> None:
    runtime = build_runtime(make_settings(search_table(slapd)), load_entrypoints=False,
                            plugins=[("ldap", zengine_ldap)])
    runtime.start()
    ldap = backend(runtime)
    assert isinstance(ldap.authenticate("alice", ALICE), Identity)
    conn = ldap.search_pool._idle[0].conn
    runtime.stop()
    assert conn.closed
    assert ldap.search_pool.open_connections == 0
    with pytest.raises(BackendUnavailable, match="shut down"):
        ldap.authenticate("alice", ALICE)
