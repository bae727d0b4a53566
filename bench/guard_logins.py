"""Login guard: password guessing, credential stuffing and unknown-vs-wrong timing.

Real servers (subprocesses on loopback) for the attacks, behind ``trusted_proxies`` so the
attacker and the legitimate user have different real addresses (``X-Forwarded-For``); the
timing comparison runs each backend's chain (static, SQL on SQLite, LDAP on a throw-away
slapd) in process over ASGI; and warm logins (verified-login cache hits) during a burst of
cold ones (cache misses that need argon2). Every loop is bounded. Rewrites the ``guard``
section of docs/benchmarks.md (only when every part ran). Usage::

    .venv/bin/python bench/guard_logins.py [--guesses 10000] [--concurrency 50]
        [--only attack,warm,stuffing,timing]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2 as httpx  # noqa: E402

from bench.run import CONFIG, free_port, machine, replace_section  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
ATTACKER = "203.0.113.66"
HOME = "192.0.2.10"


@contextmanager
def server(workdir: Path, env: dict[str, str], workers: int = 1) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = workdir / f"server-{port}.log"
    environ = {**os.environ, "ZENGINE_SERVER__PORT": str(port),
               "ZENGINE_SERVER__ACCESS_LOG": "false", "ZENGINE_LOGGING__FORMAT": "json",
               "ZENGINE_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
               # The legitimate user's login is measured with its argon2 verification.
               "ZENGINE_LOGIN_CACHE__ENABLED": "false", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", "serve", "--config",
                                 str(CONFIG), "--workers", str(workers)],
                                env=environ, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded shared machine starts slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start:\n" + log.read_text())
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # An overloaded shared machine may take longer to drain: never leave it running.
            proc.kill()
            proc.wait(timeout=30)


def login_url(base: str, user: str, password: str) -> str:
    return f"{base}/id.php?u={user}&p={password}&v=1.14"


def checks_reached(log: Path) -> int:
    """Guesses that reached a password check: one ``wrong_login`` security line each."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        if '"security.login_refused"' in line and '"reason": "wrong_login"' in line:
            count += 1
    return count


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def legit_latency(base: str, count: int, refused: Counter[int] | None = None,
                  started: list[float] | None = None) -> list[float]:
    """Alice's logins from her usual address: latency of each served document; any other
    answer is counted in ``refused`` by status; ``started`` gets each served sample's start
    (``time.monotonic()``), to tell where in the attack the slow ones fell."""
    out = []
    with httpx.Client(headers={"X-Forwarded-For": HOME}, timeout=60) as client:
        for _ in range(count):
            begun = time.monotonic()
            start = time.perf_counter()
            try:
                answer = client.get(login_url(base, "alice", "wonderland"))
            except httpx.HTTPError:
                if refused is not None:
                    refused[0] += 1
                continue
            if b"<account>" in answer.content:
                out.append((time.perf_counter() - start) * 1000)
                if started is not None:
                    started.append(begun)
            elif refused is not None:
                refused[answer.status_code] += 1
            else:
                raise AssertionError(answer.content[:200])
    return out


async def flood(base: str, urls: list[str], concurrency: int, address: str,
                began: list[float] | None = None) -> tuple[Counter[int], float | None, float]:
    """Closed loop: ``concurrency`` clients send ``urls``; status counts, first 429 (s), total.
    ``began`` gets the flood's start (``time.monotonic()``)."""
    statuses: Counter[int] = Counter()
    first_429: list[float] = []
    queue = iter(urls)
    start = time.monotonic()
    if began is not None:
        began.append(start)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers={"X-Forwarded-For": address}, timeout=120,
                                 limits=limits) as client:
        async def worker() -> None:
            for url in queue:
                try:
                    answer = await client.get(url)
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[answer.status_code] += 1
                if answer.status_code == 429 and not first_429:
                    first_429.append(time.monotonic() - start)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, (first_429[0] if first_429 else None), time.monotonic() - start


#: The issue's target: the real user's p99 during an attack at most this many times idle.
TARGET_RATIO = 2.0


def ratio_cell(idle: list[float], during: list[float]) -> str:
    """p99 during / p99 idle against :data:`TARGET_RATIO`."""
    if not idle or not during:
        return "n/a"
    ratio = pct(during, 0.99) / pct(idle, 0.99)
    verdict = "OK" if ratio <= TARGET_RATIO else "**missed**"
    return f"{ratio:.2f}x ({verdict}, target <= {TARGET_RATIO:g}x)"


def load_now() -> float:
    return os.getloadavg()[0]


def slowest(during: list[float], started: list[float], origin: float, count: int = 5) -> str:
    """Where the slowest samples fell, seconds after the attack began: a burst at the start
    and a loaded machine throughout look alike in a p99 and not here."""
    pairs = sorted(zip(during, started, strict=True), reverse=True)[:count]
    return ", ".join(f"{ms:.0f} ms at {at - origin:.1f} s" for ms, at in pairs)


def attack(workdir: Path, guesses: int, concurrency: int, workers: int,
           env: dict[str, str], label: str) -> list[str]:
    with server(workdir, env, workers) as (base, log):
        legit_latency(base, 3)  # warm up; HOME becomes a familiar address
        load_before = load_now()
        idle = legit_latency(base, 30)
        urls = [login_url(base, "alice", f"guess{i:05d}") for i in range(guesses)]
        during: list[float] = []
        started: list[float] = []
        began: list[float] = []
        refused: Counter[int] = Counter()
        done = threading.Event()

        def sample() -> None:
            while not done.is_set() and len(during) < 500:
                during.extend(legit_latency(base, 1, refused, started))

        sampler = threading.Thread(target=sample)
        sampler.start()
        statuses, first, total = asyncio.run(flood(base, urls, concurrency, ATTACKER, began))
        done.set()
        sampler.join(120)
        time.sleep(0.5)
    load_after = load_now()
    reached = checks_reached(log)
    status_text = ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(statuses.items()))
    not_served = ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(refused.items()))
    if during and began:
        print(f"  {label}: slowest samples during the attack: "
              f"{slowest(during, started, began[0])}", flush=True)
    ratio = ratio_cell(idle, during)
    during = during or [float("nan")]
    return [
        f"| {label} | {guesses:,} guesses, concurrency {concurrency} | {reached} | "
        f"{first:.2f} s | {total:.1f} s | {status_text} | "
        f"{statistics.median(idle):.0f} / {pct(idle, 0.99):.0f} ms | "
        f"{statistics.median(during):.0f} / {pct(during, 0.99):.0f} ms ({len(during)} served"
        f"{'; not served: ' + not_served if not_served else ''}) | {ratio} | "
        f"{load_before:.1f} / {load_after:.1f} |"
        if first is not None else f"| {label} | no lockout | {reached} | | {total:.1f} s | "
        f"{status_text} | | | | {load_before:.1f} / {load_after:.1f} |"]


# -- warm logins during a cold-login burst (issue 10) ------------------------------------

#: The login cache's key for the runs (workers must share one to share entries in Redis).
CACHE_SECRET = "bench-only-login-cache-secret-0123456789"


def users_file(workdir: Path, cold: int) -> Path:
    """The example users plus ``cold`` users ``cold00000`` ... with alice's password hash (the
    same stored string is fine: each username is its own cache entry, so each first login
    is a cache miss that pays a full argon2id verification)."""
    import tomllib

    example = (CONFIG.parent / "users.example.toml").read_text(encoding="utf-8")
    alice_hash = tomllib.loads(example)["users"]["alice"]["password_hash"]
    extra = []
    for i in range(cold):
        extra.append(f'\n[users.cold{i:05d}]\npassword_hash = "{alice_hash}"\n'
                     f'[[users.cold{i:05d}.accounts]]\nident = "cold{i:05d}"\n'
                     f'sip_username = "{50000 + i}"\nsip_password = "bench-{i}"\n'
                     f'domain = "pbx.example.com"\n')
    path = workdir / "users.bench.toml"
    path.write_text(example + "".join(extra), encoding="utf-8")
    return path


def warm_latency(base: str, stop: threading.Event | None, limit: int,
                 refused: Counter[int]) -> list[float]:
    """Alice's warm logins (her password is in the login cache) until ``stop`` or ``limit``."""
    out: list[float] = []
    with httpx.Client(headers={"X-Forwarded-For": HOME}, timeout=60) as client:
        for _ in range(limit):
            if stop is not None and stop.is_set():
                break
            start = time.perf_counter()
            try:
                answer = client.get(login_url(base, "alice", "wonderland"))
            except httpx.HTTPError:
                refused[0] += 1
                continue
            if b"<account>" in answer.content:
                out.append((time.perf_counter() - start) * 1000)
            else:
                refused[answer.status_code] += 1
    return out


def warm_during_cold(workdir: Path, cold: int, concurrency: int, workers: int,
                     env: dict[str, str], label: str) -> str:
    """Warm logins' p50/p99 idle and during a burst of ``cold`` first logins of distinct
    users (cache misses: argon2id each) at ``concurrency``; a 503 (pool full) is an answer,
    not retried, as a Zoiper app keeps its configuration and retries later."""
    path = users_file(workdir, cold)
    env = {**env, "ZENGINE_LOGIN_CACHE__ENABLED": "true",
           "ZENGINE_LOGIN_CACHE__SECRET": CACHE_SECRET,
           "ZENGINE_PLUGINS__STATIC__USERS_FILE": str(path)}
    refused: Counter[int] = Counter()
    with server(workdir, env, workers) as (base, _log):
        warm_latency(base, None, 20, refused)  # the first one verifies and fills the cache
        load_before = load_now()
        idle = warm_latency(base, None, 300, refused)
        urls = [login_url(base, f"cold{i:05d}", "wonderland") for i in range(cold)]
        during: list[float] = []
        done = threading.Event()
        sampler = threading.Thread(
            target=lambda: during.extend(warm_latency(base, done, 5000, refused)))
        sampler.start()
        statuses, _first, total = asyncio.run(flood(base, urls, concurrency, "198.51.100.20"))
        done.set()
        sampler.join(120)
    load_after = load_now()
    status_text = ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(statuses.items()))
    not_served = ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(refused.items()))
    ratio = ratio_cell(idle, during)
    cold_rate = statuses.get(200, 0) / total if total else 0.0
    during_text = (f"{statistics.median(during):.1f} / {pct(during, 0.99):.1f} ms"
                   if during else "none served")
    return (f"| {label} | {cold:,} cold logins, concurrency {concurrency} | {total:.1f} s, "
            f"{cold_rate:.1f} served/s | {status_text} | "
            f"{statistics.median(idle):.1f} / {pct(idle, 0.99):.1f} ms | {during_text} "
            f"({len(during)} served{'; not served: ' + not_served if not_served else ''}) | "
            f"{ratio} | {load_before:.1f} / {load_after:.1f} |")


def stuffing(workdir: Path, attempts: int, concurrency: int, env: dict[str, str]) -> str:
    with server(workdir, env) as (base, log):
        urls = [login_url(base, f"user{i:05d}", "Summer2026!") for i in range(attempts)]
        statuses, first, total = asyncio.run(flood(base, urls, concurrency, ATTACKER))
        time.sleep(0.5)
    reached = checks_reached(log)
    status_text = ", ".join(f"{code or 'error'}: {n}" for code, n in sorted(statuses.items()))
    first_text = f"{first:.1f} s" if first is not None else "never"
    return (f"| {attempts:,} usernames, one password, one address, concurrency {concurrency} "
            f"| {reached} | {first_text} | {total:.1f} s | {status_text} |")


# -- unknown user vs wrong password, in process ------------------------------------------

GUARD_OFF_LIMITS = {"lockout_threshold": 1000, "hard_cap": 100000,
                    "address_max_failures": 10_000_000, "tenant_max_verifications": 10_000_000}
#: [server] backend_timeout for the timing runs: 8 logins at once on a shared 2-core machine
#: queue for longer than the default 10 s, and two 503s compare nothing. Raised so that
#: every login is answered and the comparison is of the answers.
TIMING_BACKEND_TIMEOUT = 120.0


def best_threshold_accuracy(a: list[float], b: list[float]) -> float:
    """Accuracy of the best single latency threshold telling ``a`` from ``b`` (0.5 = chance)."""
    labelled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    total, best = len(labelled), 0.0
    below_a = below_b = 0
    for _, label in labelled:
        below_a += label == 0
        below_b += label == 1
        # "a if below": correct = a below + b above; or the reverse rule.
        rule = (below_a + (len(b) - below_b)) / total
        best = max(best, rule, 1 - rule)
    return best


def chance_level(a: list[float], b: list[float], rounds: int = 200) -> float:
    """The same classifier on randomly relabelled samples: what "no better than chance" means
    for these sample sizes (a best threshold always fits some noise)."""
    import random

    rng = random.Random(7)
    pooled = a + b
    total = 0.0
    for _ in range(rounds):
        rng.shuffle(pooled)
        total += best_threshold_accuracy(pooled[:len(a)], pooled[len(a):])
    return total / rounds


Shape = tuple[int, bytes, tuple[tuple[str, str], ...]]


def identical_shapes(unknown: list[Shape], wrong: list[Shape]) -> tuple[bool, str]:
    """Status, body and headers alike for both kinds: the same set of answers, one shape per
    status (a 503 may happen to either, but then to both alike). Says how many of each."""
    by_status: dict[int, set[Shape]] = {}
    for shape in (*unknown, *wrong):
        by_status.setdefault(shape[0], set()).add(shape)
    alike = set(unknown) == set(wrong) and all(len(v) == 1 for v in by_status.values())
    counts = Counter(shape[0] for shape in (*unknown, *wrong))
    return alike, ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))


def timing_run(make_client: Callable[[], Any], unknown: tuple[str, str],
               wrong: tuple[str, str], samples: int, concurrency: int) -> dict[str, Any]:
    with make_client() as client:
        answers: dict[str, list[float]] = {"unknown": [], "wrong": []}
        shapes: dict[str, list[Shape]] = {"unknown": [], "wrong": []}
        lock = threading.Lock()

        def one(i: int) -> None:
            kind = "unknown" if i % 2 else "wrong"
            user, password = unknown if kind == "unknown" else wrong
            start = time.perf_counter()
            answer = client.get("/id.php", params={"u": user, "p": password, "v": "1.14"})
            elapsed = (time.perf_counter() - start) * 1000
            headers = tuple(sorted((k, v) for k, v in answer.headers.items()
                                   if k not in ("date",)))
            with lock:
                answers[kind].append(elapsed)
                shapes[kind].append((answer.status_code, answer.content, headers))

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(2 * samples)))
    alike, statuses = identical_shapes(shapes["unknown"], shapes["wrong"])
    return {"unknown": answers["unknown"], "wrong": answers["wrong"], "identical": alike,
            "statuses": statuses}


def asgi_client(settings_data: dict[str, Any], plugins: list[str]) -> Callable[[], Any]:
    from starlette.testclient import TestClient

    from zengine.app import create_app
    from zengine.settings import load_settings, settings_from_mapping
    from zengine.testing import plugin_list

    def make() -> Any:
        if settings_data.get("example"):
            base = load_settings(CONFIG, environ={})
            import dataclasses

            settings = dataclasses.replace(base, plugin_tables={
                **base.plugin_tables, "guard": GUARD_OFF_LIMITS}, server=base.server.model_copy(
                    update={"backend_timeout": TIMING_BACKEND_TIMEOUT}))
        else:
            settings = settings_from_mapping(
                {**settings_data, "server": {"backend_timeout": TIMING_BACKEND_TIMEOUT}},
                environ={}, base_dir=Path.cwd())
        app = create_app(settings, load_entrypoints=False,
                         plugins=plugin_list("zoiper", "urls", "guard", *plugins))
        return TestClient(app, client=("127.0.0.1", 1))

    return make


def sqlite_backend(workdir: Path) -> tuple[dict[str, Any], tuple[str, str]]:
    import sqlalchemy as sa

    from zengine.runtime import build_runtime
    from zengine.settings import settings_from_mapping
    from zengine.testing import plugin_list
    from zengine_sql import get_state, migrate
    from zengine_sql.admin import add_user
    from zengine_sql.crypto import generate_key
    from zengine_sql.specs import UserSpec

    url = f"sqlite:///{workdir / 'bench.db'}"
    engine = sa.create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    table = {"url": url, "encryption_keys": {"k1": generate_key()}}
    data = {"plugins": {"sql": table, "guard": GUARD_OFF_LIMITS}}
    runtime = build_runtime(settings_from_mapping({"plugins": {"sql": table}}, environ={}),
                            load_entrypoints=False, plugins=plugin_list("sql"))
    runtime.start()
    state = get_state(runtime)
    assert state is not None
    # The demo password of the example config, so the bench reads like the others.
    add_user(state, UserSpec(username="alice", password="wonderland"))  # noqa: S106
    runtime.stop()
    return data, ("alice", "not-her-password")


def timing(workdir: Path, idle_samples: int, load_samples: int) -> list[str]:
    rows = []
    backends: list[tuple[str, Callable[[], Any], tuple[str, str], Callable[[], None]]] = []
    backends.append(("static (users file)", asgi_client({"example": True}, ["static"]),
                     ("alice", "not-her-password"), lambda: None))
    sql_data, sql_wrong = sqlite_backend(workdir)
    backends.append(("SQL own schema (SQLite)", asgi_client(sql_data, ["sql"]), sql_wrong,
                     lambda: None))
    slapd = None
    try:
        import trustme

        from tests.ldap import schema
        from tests.ldap.conftest import PROFILES, search_table
        from tests.ldap.slapd import Slapd, missing_reason

        if missing_reason() is None:
            slapd = Slapd(workdir / "slapd", trustme.CA())
            slapd.setup()
            slapd.start()
            ldap_data = {"profiles": PROFILES,
                         "plugins": {"ldap": search_table(slapd), "guard": GUARD_OFF_LIMITS}}
            backends.append(("LDAP search + bind (slapd, StartTLS)",
                             asgi_client(ldap_data, ["ldap"]),
                             ("alice", schema.PASSWORDS["alice"] + "-wrong"), lambda: None))
        for label, make, wrong, _ in backends:
            for mode, samples, concurrency in (("idle", idle_samples, 1),
                                               ("load", load_samples, 8)):
                result = timing_run(make, ("nobody-at-all", wrong[1]), wrong, samples,
                                    concurrency)
                u, w = result["unknown"], result["wrong"]
                accuracy = best_threshold_accuracy(u, w)
                chance = chance_level(u, w)
                rows.append(
                    f"| {label} | {mode} (concurrency {concurrency}) | {len(u)} + {len(w)} | "
                    f"{statistics.median(u):.0f} / {pct(u, 0.95):.0f} ms | "
                    f"{statistics.median(w):.0f} / {pct(w, 0.95):.0f} ms | {accuracy:.0%} "
                    f"(chance {chance:.0%}) | "
                    f"{'yes' if result['identical'] else 'NO'} ({result['statuses']}) |")
                print(rows[-1], flush=True)
    finally:
        if slapd is not None:
            slapd.stop()
    return rows


def cleanup_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


PARTS = ("attack", "warm", "stuffing", "timing")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--stuffing", type=int, default=1_000)
    parser.add_argument("--cold", type=int, default=400,
                        help="cold logins (distinct users, cache misses) in the warm/cold run")
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument("--load-samples", type=int, default=48)
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated parts to run (" + ", ".join(PARTS) + "); "
                        "docs/benchmarks.md is rewritten only when all of them ran")
    args = parser.parse_args()
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if parts - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(parts - set(PARTS)))}")
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    prefix = f"zbench-{uuid.uuid4().hex[:8]}:"
    redis_env = {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
                 "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix}
    loads = Loads()
    attack_rows: list[str] = []
    warm_rows: list[str] = []
    stuffing_row = ""
    timing_rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zengine-guard-bench-") as tmp:
        workdir = Path(tmp)
        try:
            if "attack" in parts:
                attack_rows += attack(workdir, args.guesses, args.concurrency, 1, {},
                                      "1 worker, in-process store")
                print(attack_rows[-1], flush=True)
                loads.sample()
                attack_rows += attack(workdir, args.guesses, args.concurrency, 2, redis_env,
                                      "2 workers sharing Redis")
                print(attack_rows[-1], flush=True)
                loads.sample()
            if "warm" in parts:
                warm_rows.append(warm_during_cold(workdir, args.cold, args.concurrency, 1, {},
                                                  "1 worker, in-process cache"))
                print(warm_rows[-1], flush=True)
                loads.sample()
                warm_rows.append(warm_during_cold(workdir, args.cold, args.concurrency, 2,
                                                  redis_env, "2 workers, cache in Redis"))
                print(warm_rows[-1], flush=True)
                loads.sample()
        finally:
            cleanup_redis(prefix)
        if "stuffing" in parts:
            stuffing_row = stuffing(workdir, args.stuffing, args.concurrency,
                                    {"ZENGINE_PLUGINS__GUARD__ADDRESS_MAX_FAILURES": "200"})
            print(stuffing_row, flush=True)
            loads.sample()
        if "timing" in parts:
            timing_rows = timing(workdir, args.idle_samples, args.load_samples)
            loads.sample()
    text = section(attack_rows, warm_rows, stuffing_row, timing_rows, loads)
    if parts == set(PARTS):
        replace_section("guard", text)
    else:
        print(f"(--only {args.only}: docs/benchmarks.md left as it is)")
    print(text)
    return 0


class Loads:
    """The 1-minute load average before the run (other work on the machine; the run's own
    servers and clients add to it once started) and after each part."""

    def __init__(self) -> None:
        self.started = time.strftime("%H:%M UTC", time.gmtime())
        self.before = os.getloadavg()
        self.after: list[float] = []

    def sample(self) -> None:
        self.after.append(load_now())

    def sentence(self) -> str:
        cores = os.cpu_count() or 1
        one, five, fifteen = self.before
        seen = f"{min(self.after):.1f} to {max(self.after):.1f}" if self.after else "not sampled"
        measured = (f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1, 5, 15 min) "
                    f"before the run at {self.started}, {seen} after its parts (those include "
                    f"the run's own servers and clients)")
        # Worded by what was measured before the run, the other engineers' share: the
        # machine is not always shared, and a quiet run should say so.
        if max(one, five) < 0.5 * cores:
            return f"on a quiet machine: {measured}."
        if max(one, five) < 1.5 * cores:
            return (f"on a lightly shared machine: {measured}; absolute latencies may be "
                    "somewhat inflated, the ratios are the comparison.")
        return (f"shared with other work: {measured}, so absolute latencies are several "
                f"times a quiet machine's; compare rows of one run.")


def section(attack_rows: list[str], warm_rows: list[str], stuffing_row: str,
            timing_rows: list[str], loads: Loads) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, {loads.sentence()}",
        "Command: `nox -s bench` (`bench/guard_logins.py`; real servers on loopback behind "
        "`trusted_proxies`, attacker and user told apart by `X-Forwarded-For`; guard "
        "defaults; login cache off in the attack runs so every login pays its argon2 "
        "verification).",
        "",
        "Guessing alice's password from one address while alice logs in from her usual one "
        "(\"reached a check\" = guesses that got a password verification, counted from the "
        "server's `wrong_login` security lines; 503 = verification pool full; \"load before "
        "/ after\" = the 1-minute load average before and after the row):",
        "",
        "| run | load | reached a check | first 429 after | attack took | answers | "
        "alice idle p50 / p99 | alice during attack p50 / p99 (samples) | p99 during / idle | "
        "load before / after |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(attack_rows or ["| (not run) |"]),
        "",
        "Warm logins (alice, her password in the verified-login cache) idle and during a "
        "burst of cold logins (distinct users logging in for the first time: cache misses, "
        "one argon2id verification each; from one address, a 503 answer is not retried):",
        "",
        "| run | burst | burst took | burst answers | warm idle p50 / p99 | "
        "warm during burst p50 / p99 (samples) | p99 during / idle | load before / after |",
        "|---|---|---|---|---|---|---|---|",
        *(warm_rows or ["| (not run) |"]),
        "",
        "Credential stuffing (1 worker; `address_max_failures = 200` for the run, the default "
        "is 1,000 for carrier NAT):",
        "",
        "| load | reached a check | first 429 after | took | answers |",
        "|---|---|---|---|---|",
        stuffing_row or "| (not run) |",
        "",
        "Unknown user vs wrong password, in process over ASGI, default failure floor "
        "(400 ms), lockout thresholds raised so every attempt reaches the chain, "
        f"`[server] backend_timeout` raised to {TIMING_BACKEND_TIMEOUT:.0f} s so that every "
        "login is answered (8 at once queue for longer than the default 10 s on a shared "
        "2-core machine, and two 503s compare nothing); \"classifier\" = accuracy of the "
        "best latency threshold; \"chance\" = the same classifier on randomly relabelled "
        "samples of the same sizes; \"identical\" = the same answers for both kinds, one "
        "status, body and header set per status (answers counted by status):",
        "",
        "| backend | mode | samples | unknown p50 / p95 | wrong p50 / p95 | classifier | "
        "status, body, headers identical |",
        "|---|---|---|---|---|---|---|",
        *(timing_rows or ["| (not run) |"]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
