"""The observation hooks and the metrics plugin in one process: what each hook reports, the
settings, the allow-list, bounded labels. The two-worker server is test_metrics_server.py."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import structlog
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from tests.conftest import EXAMPLE_CONFIG, runtime_of
from tests.metrics.conftest import parse, total, value
from tests.serverproc import free_port
from zengine import hookimpl
from zengine.app import create_app
from zengine.errors import ConfigError
from zengine.models import Observation, RequestSummary
from zengine.runtime import build_runtime
from zengine.settings import load_settings
from zengine.testing import plugin_list
from zengine_metrics.metrics import MAX_VALUES, Labels, Metrics
from zengine_metrics.settings import MetricsSettings

FAST = {"ZENGINE_AUTH__FAILURE_FLOOR_MS": "0"}


class Recorder:
    def __init__(self) -> None:
        self.observed: list[Observation] = []
        self.finished: list[RequestSummary] = []

    @hookimpl
    def zengine_observe(self, observation: Observation) -> None:
        self.observed.append(observation)

    @hookimpl
    def zengine_request_finished(self, summary: RequestSummary) -> None:
        self.finished.append(summary)


class Broken:
    @hookimpl
    def zengine_observe(self) -> None:
        raise RuntimeError("an observer's bug")

    @hookimpl
    def zengine_request_finished(self) -> None:
        raise RuntimeError("an observer's bug")


def client_with(*extra: tuple[str, object], environ: dict[str, str] | None = None,
                builtins: tuple[str, ...] = ("zoiper", "static", "urls", "audit")) -> TestClient:
    settings = load_settings(EXAMPLE_CONFIG, environ={**FAST, **(environ or {})})
    app = create_app(settings, load_entrypoints=False, plugins=[*plugin_list(*builtins), *extra])
    return TestClient(app)


def names(items: list[Observation]) -> list[tuple[str, str | None, str | None]]:
    return [(item.name, item.result, item.backend) for item in items]


def test_zengine_request_finished_sees_every_answer_without_a_name() -> None:
    recorder = Recorder()
    with client_with(("recorder", recorder)) as client:
        assert client.get("/id.php?u=alice&p=wonderland&v=1.14").status_code == 200
        client.get("/provision?u=alice&p=not-it&v=1.14")
        client.get("/id.php?u=alice&v=1.14")
        assert client.get("/id.php?p=x&p=y").status_code == 400
        assert client.head("/id.php").status_code == 405
        client.get("/livez")  # not a provisioning path: not a request here
    seen = [(s.path, s.status, s.outcome, s.family, s.tenant) for s in recorder.finished]
    assert seen == [("/id.php", 200, "served", "mobile", ""),
                    ("/provision", 200, "rejected", "mobile", ""),
                    ("/id.php", 200, "missing_credentials", "mobile", ""),
                    ("/id.php", 400, "bad_request", None, ""),
                    ("/id.php", 405, "method", None, "")]
    assert all(0 < s.seconds < 60 for s in recorder.finished)
    assert "alice" not in repr(recorder.finished) and "testclient" not in repr(recorder.finished)


def test_zengine_observe_reports_logins_backends_passwords_and_caches() -> None:
    recorder = Recorder()
    with client_with(("recorder", recorder)) as client:
        steps = []
        for query in ("u=alice&p=wonderland&v=1.14", "u=alice&p=wonderland&v=1.14",
                      "u=alice&p=not-it&v=1.14", "u=nobody&p=x&v=1.14"):
            before = len(recorder.observed)
            client.get(f"/id.php?{query}")
            steps.append(names(recorder.observed[before:]))
    first, again, wrong, unknown = steps
    assert first == [("login_cache", "miss", "static"), ("password.argon2", "real", None),
                     ("backend.authenticate", "ok", "static"), ("login", "accepted", None),
                     ("document_cache", "miss", None), ("backend.load_accounts", "ok", "static")]
    # The returning phone takes the fast path: no argon2, no backend asked at all, and its
    # answer still counts as a verified-login cache hit and a document cache hit.
    assert again == [("login_cache", "hit", "static"), ("login", "accepted", None),
                     ("document_cache", "hit", None)]
    assert wrong == [("login_cache", "miss", "static"), ("password.argon2", "real", None),
                     ("backend.authenticate", "ok", "static"), ("login", "rejected", None)]
    # Unknown and wrong are one login result; the dummy verification is spent and counted.
    assert unknown == [("backend.authenticate", "ok", "static"),
                       ("password.argon2", "dummy", None), ("login", "rejected", None)]
    timed = [item for item in recorder.observed if item.name in ("login", "backend.authenticate")]
    assert all(item.seconds is not None and item.seconds >= 0 for item in timed)
    assert "alice" not in repr(recorder.observed)


def test_zengine_observe_store_error_from_the_guard_when_redis_is_down() -> None:
    recorder = Recorder()
    environ = {"ZENGINE_PLUGINS__GUARD__REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
               "ZENGINE_PLUGINS__GUARD__REDIS_TIMEOUT": "0.2",
               "ZENGINE_LOGIN_CACHE__STORE": "local"}
    with client_with(("recorder", recorder), environ=environ,
                     builtins=("zoiper", "static", "urls", "audit", "guard")) as client:
        before = len(recorder.observed)
        # on_redis_error = local: the login is still guarded and served.
        assert b"<account>" in client.get("/id.php?u=alice&p=wonderland&v=1.14").content
    errors = [item for item in recorder.observed[before:] if item.name == "store.error"]
    assert errors and {(e.result, e.backend) for e in errors} == {("guard", "redis")}


def test_zengine_observe_and_zengine_request_finished_exceptions_are_swallowed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A logger of our own: the module's, once used while zengine's logging (which caches
    # loggers on first use) was configured by an earlier test, would escape capture_logs.
    monkeypatch.setattr("zengine.plugins.log", structlog.get_logger("zengine.plugins"))
    recorder = Recorder()
    with capture_logs() as logs, client_with(("broken", Broken()),
                                             ("recorder", recorder)) as client:
        for _ in range(3):
            assert b"<account>" in client.get("/id.php?u=alice&p=wonderland&v=1.14").content
    assert [s.outcome for s in recorder.finished] == ["served"] * 3 and recorder.observed
    # Once per hook, not once per call: a broken observer must not flood the log.
    failures = [(e["hook"], e["plugin"]) for e in logs if e["event"] == "observer.hook_failed"]
    assert sorted(failures) == [("zengine_observe", "broken"),
                                ("zengine_request_finished", "broken")]


def metrics_client(**table: object) -> TestClient:
    environ = {f"ZENGINE_PLUGINS__METRICS__{key.upper()}": str(v) for key, v in table.items()}
    return client_with(environ=environ,
                       builtins=("zoiper", "static", "urls", "audit", "metrics"))


def test_metrics_are_off_by_default() -> None:
    with metrics_client() as client:
        answer = client.get("/metrics")
    assert answer.status_code == 404 and b"<error" in answer.content


def test_metrics_allow_list_refuses_everyone_else() -> None:
    # The test client's address is "testclient", in no allow-list.
    with metrics_client(enabled="true") as client:
        answer = client.get("/metrics")
    assert answer.status_code == 403 and "allow" in answer.text


@pytest.mark.parametrize(("table", "message"), [
    ({"allow": '["10.0.0.0/33"]'}, "'10.0.0.0/33' is not an IP address or CIDR"),
    ({"allow": "[]"}, "allow"),
    ({"listen": "localhost"}, "is not host:port"),
    ({"listen": "::1:9464"}, "in brackets"),
    ({"listen": "127.0.0.1:70000"}, "from 1 to 65535"),
    ({"path": "metrics"}, "path"),
    ({"enabeld": "true"}, "enabeld"),
])
def test_metrics_settings_are_validated_naming_the_key(table: dict[str, str],
                                                        message: str) -> None:
    environ = {f"ZENGINE_PLUGINS__METRICS__{key.upper()}": v for key, v in table.items()}
    settings = load_settings(EXAMPLE_CONFIG, environ=environ)
    with pytest.raises(ConfigError, match="metrics") as caught:
        build_runtime(settings, load_entrypoints=False,
                      plugins=plugin_list("zoiper", "static", "metrics"))
    assert message in str(caught.value)


def test_metrics_listener_on_a_busy_port_is_a_config_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = MetricsSettings(enabled=True, listen=f"127.0.0.1:{port}")
        from zengine_metrics.listener import Listener

        with pytest.raises(ConfigError, match=f"listen = '127.0.0.1:{port}': cannot listen"):
            Listener(config, lambda: b"")


def test_labels_are_bounded() -> None:
    label = Labels()
    assert label("family", "alice@example.com") == "other"
    assert label("family", "Robert'); DROP") == "other"
    assert label("family", None) == "none"
    kept = [label("family", f"f{i}") for i in range(MAX_VALUES + 5)]
    assert kept[:MAX_VALUES] == [f"f{i}" for i in range(MAX_VALUES)]
    assert set(kept[MAX_VALUES:]) == {"other"}
    assert label("family", "f0") == "f0"


def test_metrics_tenant_label_is_a_configured_tenant_or_unknown() -> None:
    metrics = Metrics(MetricsSettings(enabled=True), workers=1, tenants=["acme"])
    for tenant in ("", "acme", "?", "made-up"):
        metrics.request(RequestSummary("/id.php", 200, "served", "mobile", 0.01, tenant))
        metrics.observe(Observation("login", "accepted", None, 0.01), tenant)
    samples: Any = parse(metrics.exposition().decode())
    counts = {t: value(samples, "zengine_requests_total", path="/id.php", tenant=t,
                       outcome="served",
                       family="mobile", status="200") for t in ("", "acme", "unknown")}
    assert counts == {"": 1, "acme": 1, "unknown": 2}
    assert value(samples, "zengine_login_duration_seconds_count", tenant="unknown",
                 result="accepted") == 2


def test_metrics_stay_off_in_a_cli_runtime(tmp_path: Path) -> None:
    """check-config, users, lockouts start a runtime but build no app: no listener is bound
    (the running server holds the port) and no worker files are written."""
    port = free_port()
    environ = {"ZENGINE_PLUGINS__METRICS__ENABLED": "true",
               "ZENGINE_PLUGINS__METRICS__LISTEN": f"127.0.0.1:{port}",
               "ZENGINE_PLUGINS__METRICS__MULTIPROCESS_DIR": str(tmp_path / "m"),
               "ZENGINE_SERVER__WORKERS": "2"}
    runtime = build_runtime(load_settings(EXAMPLE_CONFIG, environ=environ),
                            load_entrypoints=False,
                            plugins=plugin_list("zoiper", "static", "metrics"))
    runtime.start()
    try:
        assert "metrics" not in runtime.state and "metrics.listener" not in runtime.state
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # free: nobody listens there
    finally:
        runtime.stop()
    assert not (tmp_path / "m").exists()


def test_metrics_on_their_own_listener_in_process() -> None:
    port = free_port()
    with metrics_client(enabled="true", listen=f"127.0.0.1:{port}") as client:
        assert client.get("/metrics").status_code == 404
        client.get("/id.php?u=alice&p=wonderland&v=1.14")
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    samples = parse(answer.text)
    assert value(samples, "zengine_requests_total", path="/id.php", tenant="", outcome="served",
                 family="mobile", status="200") == 1
    assert value(samples, "zengine_worker_starts_total") == 1


def test_zengine_observe_on_the_long_path_reports_the_backend_asked_for_a_cache_hit() -> None:
    recorder = Recorder()
    with client_with(("recorder", recorder),
                     environ={"ZENGINE_SERVER__FAST_PATH": "false"}) as client:
        client.get("/id.php?u=alice&p=wonderland&v=1.14")
        before = len(recorder.observed)
        client.get("/id.php?u=alice&p=wonderland&v=1.14")
        again = names(recorder.observed[before:])
    assert again == [("login_cache", "hit", "static"), ("backend.authenticate", "ok", "static"),
                     ("login", "accepted", None), ("document_cache", "hit", None)]


class PluginRoutes:
    """Routes with a secret in the path, one inside a Mount, and one that fails."""

    @hookimpl
    def zengine_register_routes(self) -> list[Any]:
        from starlette.responses import PlainTextResponse
        from starlette.routing import Mount, Route

        async def ok(request: Any) -> Any:
            return PlainTextResponse("ok", 200 if request.path_params.get("secret") else 404)

        async def broken(request: Any) -> Any:
            raise RuntimeError("a route's bug")

        async def limited(request: Any) -> Any:  # a rate limit, and a backend down
            return PlainTextResponse("later", int(request.path_params["status"]))

        return [Route("/thing/{secret}", ok), Route("/broken", broken),
                Route("/limited/{status}", limited),
                Mount("/m", routes=[Route("/x/{secret}", ok)])]


def test_zengine_request_finished_reports_plugin_routes_by_their_template() -> None:
    recorder = Recorder()
    app = client_with(("recorder", recorder), ("routes", PluginRoutes())).app
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/thing/s3cr3t-path-token?id=s3cr3t-query").status_code == 200
        assert client.get("/m/x/s3cr3t-mounted").status_code == 200
        assert client.get("/m/nowhere/s3cr3t-unmatched").status_code == 404
        assert client.get("/broken").status_code == 500
        assert client.get("/limited/429").status_code == 429
        assert client.get("/limited/503").status_code == 503
        client.get("/livez")  # the core's health paths are not counted
    seen = [(s.path, s.status, s.outcome, s.family, s.tenant) for s in recorder.finished]
    assert seen == [("/thing/{secret}", 200, "served", None, ""),
                    ("/m/x/{secret}", 200, "served", None, ""),
                    ("/m", 404, "rejected", None, ""),
                    ("/broken", 500, "error", None, ""),
                    ("/limited/{status}", 429, "too_many_attempts", None, ""),
                    ("/limited/{status}", 503, "unavailable", None, "")]
    assert "s3cr3t" not in repr(recorder.finished)


def test_metrics_count_token_redeems_and_portal_pages_by_route_never_the_token(
        tmp_path: Path) -> None:
    environ = {"ZENGINE_PLUGINS__METRICS__ENABLED": "true",
               "ZENGINE_PLUGINS__TOKENS__SQLITE_PATH": str(tmp_path / "tokens.db"),
               "ZENGINE_PLUGINS__PORTAL__ENABLED": "true",
               "ZENGINE_PLUGINS__PORTAL__SESSION_KEY": "metrics-test-session-key-0123456789ab"}
    with client_with(environ=environ, builtins=("zoiper", "static", "urls", "audit", "tokens",
                                                "portal", "metrics")) as client:
        runtime = runtime_of(client)
        from zengine_tokens.api import token_service

        issued = token_service(runtime).issue("alice", actor="test")
        assert client.get("/token", params={"id": issued.token}).status_code == 200
        # A refused token gets Zoiper's error document with 200 (zengine_token_events counts
        # it as refused); a plugin route's outcome comes from its status.
        assert client.get("/token", params={"id": "x" * 43}).status_code == 200
        assert client.get("/portal/signin").status_code == 200  # a 303 to /portal first
        assert client.get("/id.php?u=alice&p=wonderland&v=1.14").status_code == 200
        assert client.get("/metrics").status_code == 403  # not counted: a scrape
        text = runtime.state["metrics"].exposition().decode()
    samples = parse(text)

    def requests(path: str, outcome: str, status: str) -> float:
        return value(samples, "zengine_requests_total", path=path, tenant="", outcome=outcome,
                     family="none", status=status)

    assert requests("/token", "served", "200") == 2
    assert requests("/portal/signin", "served", "303") == 1
    assert requests("/portal", "served", "200") == 1
    assert value(samples, "zengine_requests_total", path="/id.php", tenant="",
                 outcome="served", family="mobile", status="200") == 1
    assert total(samples, "zengine_requests_total") == 5
    assert total(samples, "zengine_request_duration_seconds_count", path="/token") == 2
    assert issued.token not in text and "x" * 43 not in text and "alice" not in text


def test_path_label_is_bounded() -> None:
    metrics = Metrics(MetricsSettings(enabled=True), workers=1)
    for path in ("/id.php", "/t/~/id.php", "/api/v1/users/{username}", "no-slash",
                 "/token?id=abc", "/" + "a" * 100):
        metrics.request(RequestSummary(path, 200, "served", None, 0.01))
    samples: Any = parse(metrics.exposition().decode())
    paths = {dict(labels)["path"]: n for (name, labels), n in samples.items()
             if name == "zengine_requests_total"}
    assert paths == {"/id.php": 1, "/t/~/id.php": 1, "/api/v1/users/{username}": 1, "other": 3}
