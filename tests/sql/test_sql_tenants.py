"""Tenants on the shared own schema, on SQLite, PostgreSQL and MariaDB: the same username in
two tenants through ``zengine users ... --tenant`` (the shared admin write path), then the
isolation matrix over real HTTP against the real server process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from tests.serverproc import running_server
from tests.sql.conftest import KEY_1, url_text
from tests.tenants_kit import PASSWORDS, SIP, SIP_SECRET, config
from tests.test_tenants_http import check_lockouts_stay_in_their_tenant, check_logins_never_cross
from zengine.cli import main
from zengine_sql.schema import TENANTS, USERS


def sql_table(url: URL) -> str:
    return (f"[plugins.sql]\nurl = {json.dumps(url_text(url))}\nconnect_timeout = 2\n"
            f"[plugins.sql.encryption_keys]\nk1 = {json.dumps(KEY_1)}\n")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cfg: Path,
        *argv: str, stdin: str = "") -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main([*argv, "--config", str(cfg)])
    out, err = capsys.readouterr()
    return code, out + err


@pytest.mark.subprocess
def test_same_username_in_two_tenants_never_crosses_over_real_http(
        own_db: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ZENGINE_CONFIG", raising=False)
    cfg = config(tmp_path, sql=sql_table(own_db))
    for tenant in ("acme", "globex"):
        code, out = run(monkeypatch, capsys, cfg, "users", "add", "alice", "--tenant", tenant,
                        stdin=PASSWORDS[tenant] + "\n")
        assert code == 0, out
        code, out = run(monkeypatch, capsys, cfg, "users", "add-account", "alice",
                        "--tenant", tenant, "--ident", f"{tenant}-1", "--sip-username",
                        SIP[tenant], "--domain", f"sip.{tenant}.example",
                        stdin=SIP_SECRET[tenant] + "\n")
        assert code == 0, out
    # Twice in one tenant is refused; a tenant the config lacks is a typo.
    code, out = run(monkeypatch, capsys, cfg, "users", "add", "alice", "--tenant", "acme",
                    stdin="x\n")
    assert code != 0 and "user 'alice' already exists in tenant 'acme'" in out
    code, out = run(monkeypatch, capsys, cfg, "users", "add", "bob", "--tenant", "initech",
                    stdin="x\n")
    assert code != 0 and "tenant 'initech' is not configured" in out
    # Without --tenant the name is ambiguous, and the tool says so.
    code, out = run(monkeypatch, capsys, cfg, "users", "show", "alice")
    assert code != 0 and "exists in several tenants (acme, globex)" in out
    code, out = run(monkeypatch, capsys, cfg, "users", "show", "alice", "--tenant", "globex")
    assert code == 0 and json.loads(out)["accounts"][0]["sip_username"] == SIP["globex"]
    code, out = run(monkeypatch, capsys, cfg, "users", "list", "--tenant", "acme")
    assert code == 0 and out.count("alice") == 1 and "tenant=acme" in out
    engine = sa.create_engine(own_db, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(USERS.c.username, TENANTS.c.name).select_from(
            USERS.join(TENANTS, USERS.c.tenant_id == TENANTS.c.id))).all()
    engine.dispose()
    assert sorted(tuple(row) for row in rows) == [("alice", "acme"), ("alice", "globex")]

    with running_server(cfg, tmp_path, env={
            "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "3"}) as server:
        check_logins_never_cross(server)
        check_lockouts_stay_in_their_tenant(server, "login_suffix")
        output = server.output()
    for secret in [*PASSWORDS.values(), *SIP_SECRET.values()]:
        assert secret not in output

    # An operator's change reaches only that tenant's alice.
    code, out = run(monkeypatch, capsys, cfg, "users", "disable", "alice", "--tenant", "globex")
    assert code == 0, out
    code, out = run(monkeypatch, capsys, cfg, "users", "list", "--json")
    enabled = {user["tenant"]: user["enabled"] for user in json.loads(out)}
    assert enabled == {"acme": True, "globex": False}


def test_mapping_mode_tenant_column_keeps_each_tenants_rows(own_db: URL) -> None:
    import secrets

    from pydantic import SecretStr

    import zengine_sql
    from tests.sql.conftest import sql_config
    from zengine.models import Credentials, ProvisionRequest
    from zengine.runtime import Runtime, build_runtime
    from zengine.settings import settings_from_mapping

    table = f"pbx_users_{secrets.token_hex(4)}"
    engine = sa.create_engine(own_db, poolclass=sa.pool.NullPool)
    meta = sa.MetaData()
    pbx = sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("login", sa.String(64)), sa.Column("secret", sa.String(64)),
                   sa.Column("customer", sa.String(64)))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(pbx), [
            {"login": "alice", "secret": PASSWORDS["acme"], "customer": "ACME-01"},
            {"login": "alice", "secret": PASSWORDS["globex"], "customer": "globex"}])
    mapping = {"table": table, "login_column": "login", "password_column": "secret",
               "stored_as": "plain", "domain": "sip.example.net", "tenant_column": "customer"}
    settings = settings_from_mapping({
        "auth": {"chain": ["sql"]},
        "plugins": {"sql": sql_config(own_db, mode="mapping", mapping=mapping)},
        # acme's rows say "ACME-01"; globex's say its name, the default.
        "tenants": {"acme": {"plugins": {"sql": {"mapping": {"tenant": "ACME-01"}}}},
                    "globex": {}},
    }, environ={})
    runtime = build_runtime(settings, load_entrypoints=False, plugins=[("sql", zengine_sql)])
    runtime.start()
    request = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="::1",
                               credentials=None, version_raw=None)
    try:
        for name, other in (("acme", "globex"), ("globex", "acme")):
            tenant = runtime.tenants[name]

            def login(password: str, tenant: Runtime = tenant) -> object:
                return tenant.hooks.authenticate(
                    Credentials("alice", SecretStr(password)), request, tenant, ("sql",))

            identity = login(PASSWORDS[name])
            assert getattr(identity, "backend", None) == "sql", (name, identity)
            accounts = tenant.hooks.load_accounts(identity, tenant)  # type: ignore[arg-type]
            assert [a.sip_password.get_secret_value() for a in accounts] == [PASSWORDS[name]]
            # The other tenant's alice (same login) is not this tenant's row.
            assert type(login(PASSWORDS[other])).__name__ == "Rejected"
    finally:
        runtime.stop()
        meta.drop_all(engine)
        engine.dispose()
