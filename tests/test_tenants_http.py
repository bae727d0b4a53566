"""The tenant isolation matrix over real HTTP, against the real server process: the same
username in two tenants, different passwords and accounts, for every resolution method;
nothing crosses in logins, accounts, the verified-login cache or lockouts (in-process and on
the real Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.guard.conftest import prefix as guard_prefix
from tests.serverproc import Server, running_server
from tests.tenants_kit import (
    KEYS,
    PASSWORDS,
    PATH_SECRET,
    SIP_SECRET,
    config,
    error_text,
    served_sip,
)
from tests.tenants_kit import login as login_spec

METHODS = ("host", "path_key", "login_suffix")
TENANTS = ("acme", "globex")
WRONG = "Wrong username or password."


def ask(server: Server, spec: dict[str, Any], **params: str) -> httpx.Response:
    return httpx.get(server.base + spec["path"], params={**spec["params"], **params},
                     headers=spec["headers"], timeout=30)


def with_password(spec: dict[str, Any], password: str) -> dict[str, Any]:
    return {**spec, "params": {**spec["params"], "password": password}}


#: A fresh Redis key prefix per test, its keys deleted afterwards (never FLUSHDB).
redis_prefix = pytest.fixture(guard_prefix.__wrapped__, name="redis_prefix")  # type: ignore[attr-defined]


def guard_env(store: str, prefix: str) -> dict[str, str]:
    env = {"ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "3"}
    if store == "redis":
        from tests.guard.conftest import REDIS_URL, redis_client

        redis_client()
        env |= {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
                "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
                "ZENGINE_LOGIN_CACHE__SECRET": "c" * 40}
    return env


def check_logins_never_cross(server: Server) -> None:
    for how in METHODS:
        for tenant in TENANTS:
            other = "globex" if tenant == "acme" else "acme"
            spec = login_spec(tenant, how)
            for _ in range(2):  # the second login is a verified-login cache hit
                answer = ask(server, spec)
                assert answer.status_code == 200, (how, tenant, answer.text)
                assert served_sip(answer.content) == {tenant}, (how, tenant)
                assert SIP_SECRET[other] not in answer.text
            # The other tenant's (just cached) password never logs in here.
            crossed = ask(server, with_password(spec, PASSWORDS[other]))
            assert error_text(crossed.content) == WRONG, (how, tenant)


def check_lockouts_stay_in_their_tenant(server: Server, locked_by: str) -> None:
    for n in range(3):
        ask(server, with_password(login_spec("acme", locked_by), f"guess-{n}"))
    for how in METHODS:
        # acme's alice is locked whichever way the request names acme ...
        assert ask(server, login_spec("acme", how)).status_code == 429, how
        # ... and globex's alice, same name, same address, is not.
        answer = ask(server, login_spec("globex", how))
        assert served_sip(answer.content) == {"globex"}, how


@pytest.mark.subprocess
@pytest.mark.parametrize("store", ["memory", "redis"])
def test_isolation_matrix_static_users_files(tmp_path: Path, store: str,
                                             redis_prefix: str) -> None:
    env = guard_env(store, redis_prefix)
    with running_server(config(tmp_path), tmp_path, env=env) as server:
        check_logins_never_cross(server)
        check_lockouts_stay_in_their_tenant(server, "path_key")
        output = server.output()
    assert '"tenant": "acme"' in output and '"tenant": "globex"' in output
    for secret in [*KEYS["acme"], *KEYS["globex"], PATH_SECRET, *PASSWORDS.values()]:
        assert secret not in output


@pytest.mark.subprocess
def test_unknown_tenant_over_real_http_is_a_wrong_login(tmp_path: Path) -> None:
    with running_server(config(tmp_path), tmp_path) as server:
        wrong = ask(server, with_password(login_spec("acme", "host"), "nope"))
        for spec in (
            {**login_spec("acme", "host"), "headers": {"host": "nobody.example"}},
            {**login_spec("acme", "path_key"), "path": f"/t/{'N' * 43}/id.php"},
            {**login_spec("acme", "login_suffix"), "params": {
                "username": "alice@initech", "password": PASSWORDS["acme"]}},
        ):
            answer = ask(server, spec)

            def shown(r: httpx.Response) -> tuple[int, dict[str, str], bytes]:
                return r.status_code, {k: v for k, v in r.headers.items() if k != "date"}, \
                    r.content
            assert shown(answer) == shown(wrong), spec["path"]
