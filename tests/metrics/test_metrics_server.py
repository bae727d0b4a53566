"""``/metrics`` of a real server with two worker processes, after real logins, read with
prometheus-client's parser: exact counts summed over both workers, the allow-list, the
separate listener, and no name, password or address in what is scraped."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.guard.conftest import REDIS_URL, redis_client
from tests.metrics.conftest import Samples, parse, total, value
from tests.serverproc import free_port, running_server

#: What no scrape may contain: the usernames, passwords and addresses of the traffic.
NEVER = ("alice", "bob", "nobody", "wonderland", "wrong-one", "wrong-two", "wrong-three",
         "127.0.0.1", "127.0.0.2", "203.0.113.9")


def env(tmp_path: Path, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "ZENGINE_SERVER__WORKERS": "2",
        "ZENGINE_AUTH__FAILURE_FLOOR_MS": "0",
        "ZENGINE_PLUGINS__METRICS__ENABLED": "true",
        "ZENGINE_PLUGINS__METRICS__MULTIPROCESS_DIR": str(tmp_path / "metrics"),
        # One lockout and one verified-login cache for both workers, so that which worker
        # answers a login never changes a count.
        "ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
        "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
        "ZENGINE_PLUGINS__GUARD__LOCKOUT_THRESHOLD": "2",
        "ZENGINE_LOGIN_CACHE__SECRET": "metrics-test-login-cache-secret-0123456789",
        **extra,
    }


def login(base: str, query: str) -> httpx.Response:
    return httpx.get(f"{base}/id.php?{query}", timeout=60)


def traffic(base: str) -> None:
    """Good (twice: the second is a cache hit), wrong, unknown, bad input, locked."""
    for query in ("u=alice&p=wonderland&v=1.14", "u=alice&p=wonderland&v=1.14"):
        assert b"<account>" in login(base, query).content
    for query in ("u=bob&p=wrong-one&v=1.14", "u=bob&p=wrong-two&v=1.14",
                  "u=nobody&p=wrong-three&v=1.14"):
        assert b"Wrong username or password" in login(base, query).content
    assert b"No password given" in login(base, "u=alice&v=1.14").content
    assert login(base, "p=x&p=y").status_code == 400
    # Two distinct wrong passwords locked bob: even his right one is refused.
    assert login(base, "u=bob&p=builder&v=1.14").status_code == 429


def is_exposition(answer: httpx.Response) -> bool:
    """Served as Prometheus' text format (what a scraper goes by)."""
    return answer.headers["content-type"].startswith("text/plain; version=")


def check_counts(samples: Samples) -> None:
    requests = "zengine_requests_total"

    def answered(outcome: str, family: str, status: str) -> float:
        return value(samples, requests, path="/id.php", tenant="", outcome=outcome,
                     family=family, status=status)

    assert answered("served", "mobile", "200") == 2
    assert answered("rejected", "mobile", "200") == 3
    assert answered("missing_credentials", "mobile", "200") == 1
    assert answered("bad_request", "none", "400") == 1
    assert answered("too_many_attempts", "mobile", "429") == 1
    assert total(samples, requests) == 8
    assert total(samples, "zengine_request_duration_seconds_count") == 8
    logins = "zengine_login_duration_seconds_count"
    assert value(samples, logins, tenant="", result="accepted") == 2
    assert value(samples, logins, tenant="", result="rejected") == 3
    assert value(samples, logins, tenant="", result="refused") == 1
    assert total(samples, logins) == 6
    # +Inf holds every observation, as the parser reads the histogram.
    assert value(samples, "zengine_login_duration_seconds_bucket", tenant="",
                 result="accepted",
                 le="+Inf") == 2
    verifications = "zengine_password_verifications_total"
    # alice once (then the cache), bob's two wrong passwords; nobody costs the dummy one.
    assert value(samples, verifications, method="argon2", kind="real") == 3
    assert value(samples, verifications, method="argon2", kind="dummy") == 1
    cache = "zengine_login_cache_total"
    assert value(samples, cache, backend="static", result="hit") == 1
    assert value(samples, cache, backend="static", result="miss") == 3
    assert value(samples, "zengine_refusals_total", reason="locked") == 1
    # The guard's 429 never reached a backend: five logins asked the static backend.
    assert value(samples, "zengine_backend_duration_seconds_count", backend="static",
                 operation="authenticate") == 5
    assert total(samples, "zengine_backend_errors_total") == 0
    # Every installed plugin is loaded (the example plugin too, where installed) and each
    # reports a data generation, so documents are cached, per worker: alice's second login
    # is a hit when the worker that built her document answers it, a miss (and a build) when
    # the other does. (The guard's counters live in Redis, so no fast path here.)
    documents = "zengine_document_cache_total"
    assert value(samples, documents, result="uncacheable") == 0
    misses = value(samples, documents, result="miss")
    assert 1 <= misses <= 2 and value(samples, documents, result="hit") == 2 - misses
    assert total(samples, documents) == 2
    assert value(samples, "zengine_backend_duration_seconds_count", backend="static",
                 operation="load_accounts") == misses


def check_secrecy(text: str) -> None:
    for secret in NEVER:
        assert secret not in text, f"{secret!r} in the metrics"


@pytest.mark.subprocess
def test_two_workers_metrics_on_the_main_listener_behind_the_allow_list(
        tmp_path: Path, prefix: str) -> None:
    redis_client()
    stale = tmp_path / "metrics" / "run-999999999"
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"left by a server long gone")
    extra = {"ZENGINE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env(tmp_path, prefix, **extra)) as server:
        traffic(server.base)
        # Several scrapes: whichever worker answers, the counts are both workers' sum.
        answers = [httpx.get(f"{server.base}/metrics", timeout=30) for _ in range(6)]
        assert all(answer.status_code == 200 and is_exposition(answer) for answer in answers)
        texts = [answer.text for answer in answers]
        for text in texts:
            check_counts(parse(text))
            check_secrecy(text)
        # A client a trusted proxy forwards is judged by its own address: refused.
        forwarded = httpx.get(f"{server.base}/metrics", timeout=30,
                              headers={"X-Forwarded-For": "203.0.113.9"})
        assert forwarded.status_code == 403
        assert "203.0.113.9" not in forwarded.text
        # The two workers really were two processes writing their own files, both summed.
        run_dirs = list((tmp_path / "metrics").glob("run-*"))
        assert len(run_dirs) == 1 and len(list(run_dirs[0].glob("counter_*.db"))) == 2
        assert value(parse(texts[-1]), "zengine_worker_starts_total") == 2
    # The directory of a server no longer running was removed at startup.
    assert not stale.exists()


@pytest.mark.subprocess
def test_two_workers_metrics_on_a_listener_of_their_own(tmp_path: Path, prefix: str) -> None:
    redis_client()
    port = free_port()
    extra = {"ZENGINE_PLUGINS__METRICS__LISTEN": f"127.0.0.1:{port}",
             "ZENGINE_PLUGINS__METRICS__ALLOW": '["127.0.0.2/32"]'}
    with running_server(EXAMPLE_CONFIG, tmp_path, env=env(tmp_path, prefix, **extra)) as server:
        traffic(server.base)
        # Not on the main listener at all.
        main = httpx.get(f"{server.base}/metrics", timeout=30)
        assert main.status_code == 404 and b"Not found" in main.content
        url = f"http://127.0.0.1:{port}/metrics"
        # From 127.0.0.1, which the allow-list does not name: refused.
        assert httpx.get(url, timeout=30).status_code == 403
        allowed = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=allowed, timeout=30) as client:
            for _ in range(6):
                answer = client.get(url)
                assert answer.status_code == 200 and is_exposition(answer)
                check_counts(parse(answer.text))
                check_secrecy(answer.text)
            assert client.get(f"http://127.0.0.1:{port}/other").status_code == 404
