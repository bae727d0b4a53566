"""LDAP backend: logins per second against a local slapd, connection pools on.

Starts a throw-away slapd (the test suite's, from tests/ldap/slapd.py) on 127.0.0.1 and runs
complete logins through the plugin's hooks on a started Runtime: authenticate (search as the
service account, bind as the user over StartTLS) and load_accounts. No HTTP and no argon2:
the directory is the password check here. Prints one line per scenario and, last, the
headline number. Usage::

    .venv/bin/python bench/ldap_logins.py [--seconds 5] [--threads 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402
import trustme  # noqa: E402
from pydantic import SecretStr  # noqa: E402

import zengine_ldap  # noqa: E402
from tests.ldap import schema  # noqa: E402
from tests.ldap.conftest import direct_table, make_settings, search_table  # noqa: E402
from tests.ldap.slapd import Slapd, missing_reason  # noqa: E402
from zengine.models import Credentials, Identity, ProvisionRequest  # noqa: E402
from zengine.runtime import Runtime, build_runtime  # noqa: E402

REQUEST = ProvisionRequest(path="/id.php", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)
USERS = ("alice", "bob")


def login_once(runtime: Runtime, name: str) -> None:
    credentials = Credentials(username=name, password=SecretStr(schema.PASSWORDS[name]))
    identity = runtime.hooks.authenticate(credentials, REQUEST, runtime, ("ldap",))
    if not isinstance(identity, Identity):
        raise SystemExit(f"login of {name} failed: {identity!r}")
    if not runtime.hooks.load_accounts(identity, runtime):
        raise SystemExit(f"no accounts for {name}")


def measure(runtime: Runtime, seconds: float, threads: int) -> float:
    """Logins per second over ``seconds``, from ``threads`` threads."""
    login_once(runtime, "alice")  # open the pools outside the clock
    count = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        done = 0
        while time.perf_counter() < deadline:
            login_once(runtime, USERS[done % len(USERS)])
            done += 1
        count[index] = done

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(count) / (time.perf_counter() - started)


def scenario(server: Slapd, table: dict[str, Any], seconds: float, threads: int) -> float:
    runtime = build_runtime(make_settings(table), load_entrypoints=False,
                            plugins=[("ldap", zengine_ldap)])
    runtime.start()
    try:
        return measure(runtime, seconds, threads)
    finally:
        runtime.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    reason = missing_reason()
    if reason is not None:
        print(f"ldap bench skipped: {reason}")
        return 1
    # Only warnings (none expected) would go to the console; keep the output to numbers.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory(prefix="zengine-ldap-bench-") as tmp:
        server = Slapd(Path(tmp) / "slapd", trustme.CA())
        server.setup()
        server.start()
        try:
            pool = {"pool_size": args.threads, "receive_timeout": 5}
            runs: list[tuple[str, Callable[[], float]]] = [
                ("search+bind, StartTLS, 1 thread",
                 lambda: scenario(server, search_table(server, **pool), args.seconds, 1)),
                ("direct bind, StartTLS, 1 thread",
                 lambda: scenario(server, direct_table(server, **pool), args.seconds, 1)),
                (f"search+bind, StartTLS, {args.threads} threads",
                 lambda: scenario(server, search_table(server, **pool), args.seconds,
                                  args.threads)),
            ]
            results = []
            for label, run in runs:
                rate = run()
                results.append(rate)
                print(f"{label}: {rate:,.0f} logins/s")
            print(f"ldap logins/s (pool on, search+bind, StartTLS, {args.threads} threads): "
                  f"{results[-1]:.0f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
