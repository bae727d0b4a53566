"""With tenants, every tenant's runtime writes through the global runtime's audit store (one
writer thread per process), and each row carries the tenant the request was resolved to."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.testclient import TestClient

from tests.conftest import BUILTINS
from tests.tenants_kit import config, login
from zengine.app import create_app
from zengine.settings import load_settings
from zengine.testing import plugin_list
from zengine_audit.api import AuditQuery, audit_service


def test_tenant_logins_are_rows_of_their_tenant_in_one_store(tmp_path: Path) -> None:
    path = config(tmp_path, extra=f"""
[plugins.audit]
store = "sqlite"
sqlite_path = "{tmp_path / 'audit.db'}"
flush_interval = 0.05
""")
    app = create_app(load_settings(path, environ={}), load_entrypoints=False,
                     plugins=plugin_list(*BUILTINS))
    with TestClient(app) as client:
        for tenant, how in (("acme", "host"), ("globex", "path_key"), ("acme", "login_suffix")):
            spec = login(tenant, how)
            assert client.get(spec["path"], params=spec["params"],
                              headers=spec["headers"]).status_code == 200
        wrong = login("globex", "host", password_of="acme")
        client.get(wrong["path"], params=wrong["params"], headers=wrong["headers"])
        runtime = app.state.runtime
        service = audit_service(runtime)
        assert all(audit_service(t) is service for t in runtime.tenants.values())
        writers = [t for t in threading.enumerate() if t.name == "zengine-audit-writer"]
        assert len(writers) == 1
        assert service.flush(10)
        acme = service.query(AuditQuery(tenant="acme", events=("login.*",))).records
        globex = service.query(AuditQuery(tenant="globex", events=("login.*",))).records
        assert [r.outcome for r in acme] == ["accepted", "accepted"]
        assert [r.outcome for r in globex] == ["rejected", "accepted"]
        assert {r.username for r in acme + globex} == {"alice"}
        assert service.query(AuditQuery(tenant="", events=("login.*",))).records == ()
