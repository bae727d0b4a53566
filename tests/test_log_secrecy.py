"""No secret reaches any log line: the real server, as a subprocess, with its whole output read."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import time
from pathlib import Path

import httpx2 as httpx
import pytest
import structlog

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import running_server
from zengine.log import configure_logging
from zengine.runtime import build_runtime
from zengine.settings import LoggingSettings, load_settings
from zengine_tokens.api import token_service

SECRETS = [
    "wonderland",            # provisioning password
    "Tea&Cakes<3",           # SIP password
    "Tea&amp;Cakes",         # ... as it appears in XML
    "Down-the-rabbit-hole",  # second SIP password
    "t-alice-6789",          # account token
    "s3cr3t-in-wrong-login",
    "builder",
    "Phonebook-Secret-4u",   # contact service password (desktop documents)
]


@pytest.mark.subprocess
@pytest.mark.parametrize(("engine", "workers"), [
    ("hypercorn", 1), ("hypercorn", 2), ("granian", 1), ("granian", 2), ("uvicorn", 1),
    ("uvicorn", 2),
])
def test_real_server_output_holds_no_secret(tmp_path: Path, engine: str, workers: int) -> None:
    env = {"ZENGINE_LOGGING__LEVEL": "debug", "ZENGINE_SERVER__ENGINE": engine,
           "ZENGINE_SERVER__WORKERS": str(workers),
           "ZENGINE_PLUGINS__TOKENS__SQLITE_PATH": str(tmp_path / "tokens.db"),
           "ZENGINE_PLUGINS__AUDIT__STORE": "sqlite",
           "ZENGINE_PLUGINS__AUDIT__SQLITE_PATH": str(tmp_path / "audit.db"),
           "ZENGINE_PLUGINS__METRICS__ENABLED": "true",
           "ZENGINE_PLUGINS__METRICS__MULTIPROCESS_DIR": str(tmp_path / "metrics")}
    # Provisioning tokens, issued into the store the server uses: one fetched, then fetched
    # again (the replay window), and one guessed.
    runtime = build_runtime(load_settings(EXAMPLE_CONFIG, environ=env))
    runtime.start()
    try:
        issued = token_service(runtime).issue("alice")
    finally:
        runtime.stop()
    guessed = "Guessed-token-0123456789-abcdefghijklmnopq"
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as server:
        base = server.base
        for token in (issued.token, issued.token, guessed):
            fetched = httpx.get(f"{base}/token?id={token}")
            assert fetched.status_code == 200
        assert b"<options>" in httpx.get(f"{base}/token", params={"id": issued.token}).content
        ok = httpx.get(f"{base}/id.php", params={"username": "alice",
                                                  "password": "wonderland",
                                                  "version": "1.14"})
        assert ok.status_code == 200 and b"<account>" in ok.content
        assert b"Tea&amp;Cakes&lt;3" in ok.content  # the body does carry it: logs must not
        wrong = httpx.get(f"{base}/provision?u=bob&p=s3cr3t-in-wrong-login&v=1.14",
                          headers={"Referer": f"{base}/x?password=wonderland"})
        assert b"<error" in wrong.content
        basic = base64.b64encode(b"bob:builder").decode()
        by_basic = httpx.get(f"{base}/id.php", headers={"Authorization": f"Basic {basic}"})
        assert by_basic.status_code == 200
        form = httpx.post(f"{base}/id.php", data={"username": "alice",
                                                  "password": "wonderland"})
        assert form.status_code == 200
        dup = httpx.get(f"{base}/id.php?password=wonderland&password=wonderland")
        assert dup.status_code == 400
        bad_basic = httpx.get(f"{base}/id.php", headers={"Authorization": "Basic wonderland"})
        assert bad_basic.status_code == 400
        # Zoiper5: the Basic challenge, then the document with the contact service password.
        assert httpx.get(f"{base}/desktop").status_code == 401
        desktop = httpx.get(f"{base}/desktop", headers={"Authorization": f"Basic {basic}"})
        assert b"Phonebook-Secret-4u" in desktop.content
        # The metrics of the same traffic (every worker's, summed) name nobody either.
        scraped = httpx.get(f"{base}/metrics").text
    time.sleep(0.2)  # worker processes flush their last lines on the way out
    output = server.output()
    # The log really was captured: access log lines and one request event per request.
    assert output.count("provision.request") == 8, output
    assert re.search(r'GET /id\.php (HTTP/)?1\.1\\?" 200', output), output
    assert basic not in output
    assert output.count("audit.token.used") == 3 and "audit.token.refused" in output, output
    assert re.search(r'GET /token (HTTP/)?1\.1\\?" 200', output), output
    for secret in [*SECRETS, issued.token, guessed]:
        assert secret not in output, f"{secret!r} leaked into the {engine} server output"
    from prometheus_client.parser import text_string_to_metric_families

    samples = [sample for family in text_string_to_metric_families(scraped)
               for sample in family.samples]
    requests: dict[str, float] = {}
    for s in samples:
        if s.name == "zengine_requests_total":
            requests[s.labels["path"]] = requests.get(s.labels["path"], 0) + s.value
    # Every provision.request line above, and the token endpoint under its route (its four
    # redeems: used, replayed twice, refused), never under a path with the token in it.
    assert sum(n for p, n in requests.items() if p != "/token") == 8, scraped
    assert requests.get("/token") == 4, scraped
    tokens = {s.labels["event"]: s.value for s in samples
              if s.name == "zengine_token_events_total"}
    assert tokens == {"used": 1, "replayed": 2, "refused": 1}, scraped
    for secret in [*SECRETS, issued.token, guessed, basic, "alice", "bob", "127.0.0.1"]:
        assert secret not in scraped, f"{secret!r} in the {engine} metrics"
    assert "?" not in "".join(line for line in output.splitlines()
                              if "id.php" in line or "/token" in line)
    # The audit store's rows, written by every worker: every event, and no secret in any column.
    rows = _audit_rows(tmp_path / "audit.db")
    events = [row[2] for row in rows]
    assert events.count("token.issued") == 1 and events.count("token.used") == 3, events
    assert events.count("login.accepted") == 4 and events.count("login.refused") >= 1, events
    assert events.count("document.served") == 4, events
    text = repr(rows)
    for secret in [*SECRETS, issued.token, guessed, basic]:
        assert secret not in text, f"{secret!r} is in the audit table ({engine})"


def _audit_rows(path: Path) -> list[tuple[object, ...]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as conn:
        return list(conn.execute("SELECT * FROM zengine_audit_events ORDER BY id"))


@pytest.mark.subprocess
def test_http_backend_output_holds_no_secret(tmp_path: Path) -> None:
    """The HTTP backend against a real CRM over TLS: its token, the user's password and the
    SIP passwords in the CRM's answers (good and malformed) never reach the server's output."""
    import tomllib

    import trustme

    from tests.http.conftest import config, http_table
    from tests.http.crm import SIP_SECRET, TOKEN, Crm, serving

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    crm = Crm()
    for running in serving(crm, tls=ca.issue_cert("127.0.0.1"), tmp=tmp_path):
        table = http_table(running.url, ca_file, deadline=1.0, breaker_failures=100)
        del table["bearer_token"]  # from the environment, as in production
        cfg = tmp_path / "zengine.toml"
        cfg.write_text(_toml(config(table)), encoding="utf-8")
        assert tomllib.loads(cfg.read_text())["plugins"]["http"]["login"]["url"]
        with running_server(cfg, tmp_path, env={
                "ZENGINE_LOGGING__LEVEL": "debug",
                "ZENGINE_PLUGINS__HTTP__BEARER_TOKEN": TOKEN}) as server:
            base = server.base
            ok = httpx.get(f"{base}/id.php", params={"u": "alice", "p": "wonderland",
                                                     "v": "1.14"})
            assert ok.status_code == 200 and b"sip-Secret&amp;&lt;9&gt;" in ok.content
            wrong = httpx.get(f"{base}/id.php", params={"u": "alice", "p": "s3cr3t-wrong",
                                                        "v": "1.14"})
            assert b"Wrong username" in wrong.content
            for mode in ("malformed", "missing-secret", "drip", "teapot"):
                crm.mode = mode
                bad = httpx.get(f"{base}/id.php", params={"u": "alice", "p": "wonderland",
                                                          "v": "1.14"})
                assert bad.status_code in (500, 503), (mode, bad.status_code)
            time.sleep(0.2)  # let the worker flush its last lines
        output = server.output()
    assert output.count("provision.request") == 6, output
    for said in ("is not valid JSON", "(sip_password) is missing", "after deadline",
                 "http.unexpected_answer"):
        assert said in output, said  # each failure really happened and was logged
    for secret in (TOKEN, "wonderland", "s3cr3t-wrong", SIP_SECRET, "second-Secret"):
        assert secret not in output, f"{secret!r} leaked into the server output"


@pytest.mark.subprocess
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_guard_output_holds_no_secret(tmp_path: Path, log_format: str) -> None:
    """Lockouts, limits and a Redis that cannot be reached: the security lines, the outage
    alarm and the audit events name addresses and reasons, never a password tried, the Redis
    password or the digest key."""
    tried = [f"guess-pw-{i}-Xyzzy" for i in range(4)]
    env = {"ZENGINE_LOGGING__LEVEL": "debug", "ZENGINE_LOGGING__FORMAT": log_format,
           # Nothing listens there: the guard raises its alarm and falls back to memory.
           "ZENGINE_PLUGINS__GUARD__REDIS_URL": "redis://:redis-Secret-9@127.0.0.1:1/0",
           "ZENGINE_PLUGINS__GUARD__DIGEST_KEY": "guard-digest-Key-123",
           "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "3",
           "ZENGINE_PLUGINS__GUARD__ADDRESS_MAX_FAILURES": "4"}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as server:
        for password in tried:
            httpx.get(f"{server.base}/id.php", params={"u": "alice", "p": password})
        locked = httpx.get(f"{server.base}/id.php", params={"u": "alice", "p": "wonderland"})
        assert locked.status_code == 429
        limited = httpx.get(f"{server.base}/id.php", params={"u": "bob", "p": "builder-no"})
        limited = httpx.get(f"{server.base}/id.php", params={"u": "carol", "p": "wonderland"})
        assert limited.status_code == 429
        time.sleep(0.2)
    output = server.output()
    for said in ("security.login_refused", "guard.redis_unavailable", "audit.login.locked",
                 "audit.login.limited"):
        assert said in output, said
    for secret in (*tried, "wonderland", "builder-no", "redis-Secret-9",
                   "guard-digest-Key-123", *SECRETS):
        assert secret not in output, f"{secret!r} leaked into the guard's output"


def _toml(data: dict[str, object], prefix: str = "") -> str:
    """Just enough TOML for a test config: tables of strings, numbers, lists and tables."""
    import json as _json

    scalars, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            scalars.append(f"{key} = {_json.dumps(value)}")
    text = "\n".join(scalars) + "\n"
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        text += f"\n[{name}]\n" + _toml(value, name)
    return text


def test_redaction_covers_tracebacks_keys_and_secret_types() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="info"), stream=stream)
    try:
        log = structlog.get_logger("test")
        from pydantic import SecretStr

        log.info("event", password="hunter2", bind_password="b1nd", token="t0k",
                 value=SecretStr("typed-secret"), url="https://x/?user=a&password=qu3ry")
        try:
            raise RuntimeError("failed with password=tr4ceback in message")
        except RuntimeError:
            log.exception("boom")
        logging.getLogger("hypercorn.access").info(
            '127.0.0.1 "GET /id.php?username=a&password=st4dlib HTTP/1.1" 200')
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    for secret in ("hunter2", "b1nd", "t0k", "typed-secret", "qu3ry", "tr4ceback", "st4dlib"):
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["password"] == "**redacted**"
    assert "RuntimeError" in lines[1]["exception"]



def test_http_client_libraries_log_no_url_or_headers_even_at_debug() -> None:
    """httpx2 logs every request's URL at INFO and httpcore2 the CRM's response headers at
    DEBUG: a value the HTTP backend puts in a URL path (an attribute from the login answer,
    such as a session id) or a Set-Cookie the CRM answers must not reach zengine's log."""
    import http.server
    import threading

    class Crm(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Set-Cookie", "crm_session=Cookie-From-The-Crm-77")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: object) -> None:
            pass

    crm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="json", level="debug"), stream=stream)
    try:
        url = f"http://127.0.0.1:{crm.server_address[1]}/sessions/Session-In-Path-42/lines"
        with httpx.Client() as client:
            assert client.get(url).status_code == 200
        structlog.get_logger("test").debug("after")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        crm.shutdown()
        crm.server_close()
    text = stream.getvalue()
    assert '"after"' in text  # debug lines were written at all
    for secret in ("Session-In-Path-42", "Cookie-From-The-Crm-77"):
        assert secret not in text, text

@pytest.mark.subprocess
@pytest.mark.parametrize("log_format", ["console", "json"])
def test_hostile_values_reach_the_log_escaped_cut_or_not_at_all(tmp_path: Path,
                                                                 log_format: str) -> None:
    """Terminal escapes and line breaks from a client arrive escaped; a secret in a long
    User-Agent, a format or version value or an unknown parameter never arrives."""
    from tests.serverproc import running_server

    hostile = {"ua": "uasecret-9f3a", "format": "fmtsecret-77c1", "version": "versecret-51e0",
               "unknown": "unksecret-0b2d", "param": "namesecret-a61c"}
    env = {"ZENGINE_LOGGING__FORMAT": log_format, "ZENGINE_LOGGING__LEVEL": "debug"}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        # \x9b decodes (Latin-1) to U+009B, the one-byte CSI: a terminal escape.
        agent = "Zoiper \x9b2J\x9b31m " + "x" * 120 + hostile["ua"]
        httpx.get(f"{base}/id.php", params={"u": "alice", "p": "wonderland"},
                  headers={b"User-Agent": agent.encode("latin-1")})
        httpx.get(f"{base}/id.php", params={"u": "alice", "p": "wonderland",
                                            "format": hostile["format"]})
        httpx.get(f"{base}/desktop", params={"u": "alice", "p": "wonderland",
                                             "v": hostile["version"]})
        httpx.get(f"{base}/id.php", params={"u": "alice", "p": "wonderland", "v": "1.14",
                                            "zz": hostile["unknown"]})
        long_name = "n" * 60 + hostile["param"]
        httpx.get(f"{base}/id.php?{long_name}={'v' * 300}&u=alice&p=wonderland")
        httpx.get(f"{base}/id.php%1b[2J%0d%0aforged:%20line", params={"u": "alice"})
        httpx.get(f"{base}/id.php?%1b[31mdup=1&%1b[31mdup=2")
    output = srv.log_path.read_bytes()
    assert b"provision.request" in output and b"id.php" in output
    assert b"\x1b" not in output and "\x9b".encode() not in output
    assert b"\nforged" not in output and b"\rforged" not in output
    for secret in hostile.values():
        assert secret.encode() not in output, f"{secret!r} reached the log"


def test_sanitiser_escapes_controls_in_keys_values_and_json() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(format="console", level="info"), stream=stream)
    try:
        structlog.get_logger("test").info("event\x1b[2J", username="ev\x1bil\nforged=1",
                                          **{"k\x07ey": "v\u2028x\ud800"})
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    text = stream.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u2028" not in text
    assert text.count("\n") == 1, text
    assert "\\x1b" in text and "\\x07" in text


@pytest.mark.subprocess
def test_portal_sessions_and_tokens_stay_out_of_the_output(tmp_path: Path) -> None:
    """The portal's session cookies, CSRF tokens, issued tokens and signing key, and the
    password typed into it, appear in no line the server writes."""
    from tests.portal.conftest import SESSION_KEY, portal_env

    env = {**portal_env(tmp_path), "ZENGINE_LOGGING__LEVEL": "debug"}
    seen: list[str] = []
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env) as server:
        portal = f"https://127.0.0.1:{server.port}/portal"

        def cookie_of(response: httpx.Response) -> str:
            value = response.headers["set-cookie"].split(";", 1)[0]
            seen.extend([value, value.split("=", 1)[1], value.rsplit(".", 1)[1]])
            return value

        def csrf_of(response: httpx.Response) -> str:
            match = re.search(r'name="csrf" value="([^"]+)"', response.text)
            assert match is not None, response.text
            seen.append(match.group(1))
            return match.group(1)

        with httpx.Client(base_url=server.base) as client:
            start = client.get("/portal")
            cookie, csrf = cookie_of(start), csrf_of(start)
            form = {"csrf": csrf, "username": "alice"}
            wrong = client.post("/portal/signin", data={**form, "password": "s3cr3t-portal"},
                                headers={"Cookie": cookie,
                                         "Referer": f"{portal}?password=s3cr3t-portal"})
            assert wrong.status_code == 403
            signed_in = client.post("/portal/signin", data={**form, "password": "wonderland"},
                                    headers={"Cookie": cookie})
            assert signed_in.status_code == 200
            cookie, csrf = cookie_of(signed_in), csrf_of(signed_in)
            token = re.search(r"[?&]amp;t=([A-Za-z0-9_-]+)", signed_in.text)
            assert token is not None
            seen.append(token.group(1))
            fetched = client.get("/token", params={"id": token.group(1)})
            assert b"Tea&amp;Cakes&lt;3" in fetched.content
            again = client.post("/portal/token", data={"csrf": csrf},
                                headers={"Cookie": cookie})
            assert again.status_code == 200
            revoked = client.post("/portal/revoke", data={"csrf": csrf},
                                  headers={"Cookie": cookie})
            assert "cancelled" in revoked.text
    time.sleep(0.2)
    output = server.output()
    assert output.count("audit.portal.signin") == 2, output
    assert "POST /portal/signin" in output
    for secret in [*seen, SESSION_KEY, "s3cr3t-portal", *SECRETS]:
        assert secret not in output, f"{secret!r} leaked into the server output"


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", ["hypercorn", "granian", "uvicorn"])
def test_tenant_path_keys_stay_out_of_access_request_and_audit_logs(tmp_path: Path,
                                                                    engine: str) -> None:
    from tests.tenants_kit import KEYS, PASSWORDS, PATH_SECRET, config

    env = {"ZENGINE_LOGGING__LEVEL": "debug", "ZENGINE_SERVER__ENGINE": engine}
    wrong_key = "Wrong-path-key-0123456789-abcdefghijklmn"
    with running_server(config(tmp_path), tmp_path, env=env) as server:
        for key in (KEYS["acme"][0], KEYS["globex"][0], wrong_key):
            for tail in ("id.php", "no-such-path"):
                answer = httpx.get(f"{server.base}/t/{key}/{tail}",
                                   params={"username": "alice", "password": PASSWORDS["acme"]})
                assert answer.status_code == (200 if tail == "id.php" else 404)
                assert key not in answer.text
    time.sleep(0.2)
    output = server.output()
    # The access log and the request log did see these requests, with the key masked.
    assert re.search(r'GET /t/~/id\.php (HTTP/)?1\.1\\?" 200', output), output
    assert output.count("provision.request") == 3 and '"tenant": "acme"' in output, output
    assert "audit.login.accepted" in output and '"tenant": "?"' in output
    for secret in [*KEYS["acme"], *KEYS["globex"], wrong_key, PATH_SECRET]:
        assert secret not in output, f"a path key leaked into the {engine} server output"


@pytest.mark.subprocess
def test_admin_api_keys_passwords_and_tokens_stay_out_of_the_output(tmp_path: Path) -> None:
    """API keys (good and bad), the passwords and SIP passwords an API client sends, and the
    tokens it is handed appear in no line the server writes, even at debug level."""
    from tests.admin.conftest import Client, start

    seen: list[str] = []
    for srv in start(tmp_path, log_level="debug"):
        admin = srv.client()
        seen.extend(srv.keys.values())
        seen.extend(key[16:] for key in srv.keys.values())
        near_miss = srv.keys["reader"][:-4] + "AAAA"
        seen.append(near_miss)
        assert Client(srv.server).call("GET", "/api/v1/users", key=near_miss).status == 401
        assert Client(srv.server).call("GET", "/api/v1/users",
                                       key="zk_0123456789ab_" + "Q" * 43).status == 401
        seen.append("Q" * 43)
        made = admin.call("POST", "/api/v1/users", {
            "username": "ivy", "password": "Api-Pass-Ivy-1",
            "accounts": [{"ident": "ivy-1", "sip_username": "ivy", "domain": "sip.example.com",
                          "sip_password": "Api-Sip-Ivy-2"}]})
        assert made.status == 201
        assert admin.call("PUT", "/api/v1/users/ivy/password",
                          {"password": "Api-Pass-Ivy-3"}).status == 204
        assert admin.call("PUT", "/api/v1/users/ivy/accounts/ivy-1/sip-password",
                          {"sip_password": "Api-Sip-Ivy-4"}).status == 204
        # A refused body must not echo a secret either (the field names it, not the value).
        refused = admin.call("POST", "/api/v1/users", {
            "username": "ivy", "password": "Api-Pass-Ivy-5", "profile": "nope"})
        assert refused.status == 422 and b"Api-Pass-Ivy-5" not in refused.body
        issued = admin.call("POST", "/api/v1/tokens", {"username": "ivy"}).json()
        seen.append(issued["token"])
        preview = admin.call("GET", "/api/v1/users/alice/preview").json()["document"]
        assert "Tea&" not in preview
        time.sleep(0.3)
        output = srv.server.output()
    assert "audit.admin.user.created" in output and "admin.key_refused" in output
    for secret in [*seen, "Api-Pass-Ivy-1", "Api-Sip-Ivy-2", "Api-Pass-Ivy-3", "Api-Sip-Ivy-4",
                   "Api-Pass-Ivy-5", *SECRETS]:
        assert secret not in output, f"{secret!r} leaked into the server output"
