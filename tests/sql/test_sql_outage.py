"""A database outage answers 503 within the configured timeout; the next request after the
database returns succeeds, without a restart. A proxy stands in for the outage."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import URL
from starlette.testclient import TestClient

import zengine_sql
from tests.sql.conftest import PASSWORD, sql_config
from tests.sql.tcpproxy import TcpProxy
from zengine.app import create_app
from zengine.errors import BackendUnavailable
from zengine.models import Credentials, ProvisionRequest
from zengine.runtime import Runtime
from zengine.settings import settings_from_mapping
from zengine.testing import plugin_list
from zengine_sql import admin, specs

SQL_BACKENDS = ("postgres", "mariadb")
CONNECT_TIMEOUT = 2
#: Slack for thread scheduling and the argon2 work on top of the timeout.
SLACK = 2.0


@pytest.fixture
def proxy(own_db: URL) -> Iterator[TcpProxy]:
    proxy = TcpProxy((str(own_db.host), int(own_db.port or 0)))
    yield proxy
    proxy.close()


@pytest.fixture
def user(own_db: URL, runtime_for: Callable[..., Runtime], password_hash: str) -> str:
    state = zengine_sql.get_state(runtime_for(sql_config(own_db)))
    assert state is not None
    admin.add_user(state, specs.UserSpec(
        username="olga", password_hash=password_hash,
        accounts=[specs.AccountSpec(ident="o1", sip_username="olga", sip_password="sip-olga",
                                    domain="sip.example.net")]))
    return "olga"


def _get(client: TestClient, username: str) -> tuple[int, bytes, float]:
    start = time.perf_counter()
    reply = client.get("/provision", params={"username": username, "password": PASSWORD})
    return reply.status_code, reply.content, time.perf_counter() - start


def test_outage_is_503_in_time_and_recovers(own_db: URL, proxy: TcpProxy, user: str) -> None:
    config = sql_config(own_db.set(host="127.0.0.1", port=proxy.port),
                        connect_timeout=CONNECT_TIMEOUT, statement_timeout=3)
    settings = settings_from_mapping({"plugins": {"sql": config}}, environ={})
    app = create_app(settings, load_entrypoints=False, plugins=plugin_list("zoiper", "sql"))
    with TestClient(app) as client:
        status, body, _ = _get(client, user)
        assert status == 200 and b"sip-olga" in body

        proxy.cut()  # the database is gone: connections dropped, new ones refused
        status, body, elapsed = _get(client, user)
        assert status == 503 and b"<error" in body and b"sip-olga" not in body
        assert elapsed < CONNECT_TIMEOUT + SLACK

        proxy.blackhole()  # a database that accepts and never answers
        status, body, elapsed = _get(client, user)
        assert status == 503 and b"<error" in body
        assert elapsed < CONNECT_TIMEOUT + SLACK, elapsed

        proxy.restore()
        status, body, _ = _get(client, user)
        assert status == 200 and b"sip-olga" in body


def test_pool_is_bounded(own_db: URL, runtime_for: Callable[..., Runtime], user: str) -> None:
    runtime = runtime_for(sql_config(own_db, pool_size=1, max_overflow=0, pool_timeout=1))
    state = zengine_sql.get_state(runtime)
    assert state is not None
    request = ProvisionRequest(path="/", params={}, headers={}, client_addr="",
                               credentials=None, version_raw=None)
    held = state.engine.connect()  # the pool's only connection
    try:
        start = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="TimeoutError"):
            runtime.hooks.authenticate(Credentials(user, SecretStr(PASSWORD)), request,
                                       runtime, ("sql",))
        assert time.perf_counter() - start < 1 + SLACK
    finally:
        held.close()
    # Released: the next login gets the connection.
    result = runtime.hooks.authenticate(Credentials(user, SecretStr(PASSWORD)), request,
                                        runtime, ("sql",))
    assert result is not None and result.backend == "sql"
    with state.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
