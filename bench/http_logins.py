"""HTTP/JSON backend: logins per second against a local CRM, and what an outage costs.

Starts the test suite's CRM (tests/http/crm.py: Starlette under hypercorn, TLS with a trustme
CA) on 127.0.0.1 and runs complete logins through the plugin's hooks on a started Runtime:
the login POST and the accounts GET, over pooled keep-alive connections. Then the CRM turns
slow (answers after 2 s) with ``read_timeout = 0.2``: the latency of a login before the
breaker opens, and once it is open. Bounded in time; traffic to loopback only. Usage::

    .venv/bin/python bench/http_logins.py [--seconds 5] [--threads 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
import trustme  # noqa: E402
from pydantic import SecretStr  # noqa: E402

import zengine_http  # noqa: E402
from tests.http.conftest import config, http_table  # noqa: E402
from tests.http.crm import TOKEN, Crm, serving  # noqa: E402
from zengine.api import (  # noqa: E402
    BackendUnavailable,
    Credentials,
    Identity,
    ProvisionRequest,
    Runtime,
    build_runtime,
    settings_from_mapping,
)

REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)
ALICE = Credentials(username="alice", password=SecretStr("wonderland"))


def login_once(runtime: Runtime) -> None:
    identity = runtime.hooks.authenticate(ALICE, REQUEST, runtime, ("http",))
    if not isinstance(identity, Identity):
        raise SystemExit(f"login failed: {identity!r}")
    if len(runtime.hooks.load_accounts(identity, runtime)) != 2:
        raise SystemExit("wrong accounts")


def started(table: dict[str, Any]) -> Runtime:
    runtime = build_runtime(settings_from_mapping(config(table), environ={}),
                            load_entrypoints=False, plugins=[("http", zengine_http)])
    runtime.start()
    return runtime


def rate(runtime: Runtime, seconds: float, threads: int) -> float:
    login_once(runtime)  # open a connection outside the clock
    count = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            login_once(runtime)
            count[index] += 1

    begin = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(count) / (time.perf_counter() - begin)


def bare_rate(url: str, ca_file: Path, seconds: float, threads: int) -> float:
    """The same two requests, from a bare pooled httpx2 client: the service's own cost."""
    import httpx2

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx2.Client(verify=str(ca_file), headers=headers,
                       limits=httpx2.Limits(max_connections=threads)) as client:
        def once() -> None:
            client.post(f"{url}/api/login", json={"user": "alice", "secret": "wonderland"})
            client.get(f"{url}/api/customers/42/lines").json()

        once()
        count = [0] * threads
        deadline = time.perf_counter() + seconds

        def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                once()
                count[index] += 1

        begin = time.perf_counter()
        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return sum(count) / (time.perf_counter() - begin)


def outage_ms(runtime: Runtime, logins: int) -> list[float]:
    took = []
    for _ in range(logins):
        begin = time.perf_counter()
        try:
            runtime.hooks.authenticate(ALICE, REQUEST, runtime, ("http",))
        except BackendUnavailable:
            pass
        else:
            raise SystemExit("the slow CRM answered in time")
        took.append((time.perf_counter() - begin) * 1000)
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    ca = trustme.CA()
    crm = Crm()
    with tempfile.TemporaryDirectory(prefix="zengine-http-bench-") as tmp:
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        leaf = ca.issue_cert("127.0.0.1")
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        # Throughput: the CRM in a process of its own, as a real service would be.
        with subprocess.Popen([sys.executable, "-m", "tests.http.crm", str(cert), str(key)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) as proc:
            assert proc.stdout is not None and proc.stdin is not None
            url = proc.stdout.readline().strip()
            table = http_table(url, ca_file, pool_size=args.threads)
            try:
                for threads in (1, args.threads):
                    bare = bare_rate(url, ca_file, args.seconds, threads)
                    runtime = started(table)
                    try:
                        ours = rate(runtime, args.seconds, threads)
                    finally:
                        runtime.stop()
                    print(f"login + accounts over TLS, {threads} thread(s): {ours:,.0f} logins/s;"
                          f" the same two requests from a bare httpx2 client: {bare:,.0f}/s "
                          f"(ratio {ours / bare:.2f})")
            finally:
                proc.stdin.close()
                proc.wait(timeout=30)
        # Outage: an in-process CRM this script can make slow.
        for running in serving(crm, tls=leaf, tmp=Path(tmp)):
            crm.seen.clear()
            crm.delay = 2.0
            runtime = started(http_table(running.url, ca_file, read_timeout=0.2,
                                         breaker_failures=3, breaker_reset=60))
            try:
                took = outage_ms(runtime, 13)
            finally:
                runtime.stop()
            crm.delay = 0.0
            before, after = took[:3], took[3:]
            print(f"slow CRM, before the breaker opens: median {statistics.median(before):.0f} ms"
                  f" per login (read_timeout 0.2 s); once open: median "
                  f"{statistics.median(after):.2f} ms, max {max(after):.2f} ms "
                  f"({len(after)} logins, CRM asked {crm.hits - 3} more times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
