"""A worker pays only for the plugins it uses: with the example config none of the heavy
libraries of unconfigured plugins is imported (SQLAlchemy and Alembic: ~25 MB per worker;
ldap3, httpx2, Jinja2, segno, prometheus-client: 3-6 MB each).

Each check runs in a fresh interpreter, which builds the app from the config as a worker does,
runs its lifespan startup and answers a login and a readiness probe through the ASGI app (no
test client: it would import an HTTP client itself), then prints the heavy modules it has. The
control case configures an LDAP backend and must find ldap3, so the check is seen to work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLE_CONFIG

#: Imported only by the plugin (or the part of it) that needs them, when configured or used.
HEAVY = ("sqlalchemy", "alembic", "sqlmodel", "psycopg", "pymysql", "ldap3", "httpx2",
         "httpx", "jinja2", "segno", "prometheus_client", "redis")

WORKER = """
import asyncio, json, sys
from pathlib import Path

from zengine.app import create_app
from zengine.settings import load_settings


async def call(app, scope, messages):
    sent = []

    async def receive():
        return messages.pop(0) if messages else await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    task = asyncio.ensure_future(app(scope, receive, send))
    for _ in range(2000):  # bounded: 20 s
        if task.done() or any(m["type"].endswith(("startup.complete", "startup.failed"))
                              or m.get("more_body") is False for m in sent):
            break
        await asyncio.sleep(0.01)
    return task, sent


def http(path, query):
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": query, "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}


async def main():
    app = create_app(load_settings(Path(sys.argv[1])))
    lifespan, sent = await call(app, {"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, [{"type": "lifespan.startup"}])
    assert sent and sent[0]["type"] == "lifespan.startup.complete", sent
    bodies = {}
    for path, query in (("/id.php", b"u=alice&p=wonderland&v=1.14"), ("/readyz", b"")):
        request = [{"type": "http.request", "body": b"", "more_body": False}]
        task, answer = await call(app, http(path, query), request)
        await task
        bodies[path] = b"".join(m.get("body", b"") for m in answer).decode()
    heavy = sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules)
    print(json.dumps({"heavy": heavy, "bodies": bodies}))
    lifespan.cancel()


asyncio.run(main())
"""


def imported(env: dict[str, str]) -> dict[str, object]:
    # Only this test's settings: no ZENGINE_* variable of the developer's leaks in.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ZENGINE_")}
    done = subprocess.run([sys.executable, "-c", WORKER, str(EXAMPLE_CONFIG), json.dumps(HEAVY)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**clean, "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0", **env})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.subprocess
def test_a_worker_with_the_example_config_imports_no_heavy_library() -> None:
    result = imported({})
    bodies = result["bodies"]
    assert isinstance(bodies, dict)
    assert "<account>" in bodies["/id.php"], bodies
    assert "tokens" in bodies["/readyz"], bodies
    assert result["heavy"] == [], (
        f"{result['heavy']} imported by a server that configures no plugin needing them: "
        "import them where the configured feature uses them (see zengine_sql/__init__.py)")


@pytest.mark.subprocess
def test_a_configured_ldap_backend_does_import_ldap3() -> None:
    # The control: the same check sees a heavy library that the configuration does need.
    result = imported({"ZENGINE_PLUGINS__LDAP__PRESET": "openldap",
                       "ZENGINE_PLUGINS__LDAP__SERVERS": '["ldaps://ldap.invalid"]',
                       "ZENGINE_PLUGINS__LDAP__SEARCH_BASE": "dc=example,dc=com",
                       "ZENGINE_PLUGINS__LDAP__ACCOUNTS_FROM": "none"})
    assert result["heavy"] == ["ldap3"]
