"""Returning phones, side by side with the PHP peer, in one run: `nox -s bench -- returning`.

Starts the PHP peer (../shared/peers/php-zoiper: nginx + php-fpm, plain compare, DOM build),
bare hypercorn / granian / uvicorn serving a prebuilt body, and zengine on each engine, all on
127.0.0.1, and loads each for a fixed time with wrk. Reports requests/s, server CPU per request
(user + system time of the server's whole process tree over the run, divided by the requests)
and the ratios that the targets in docs/benchmarks.md are about. Every load is bounded in time
or count and stops by itself. Rewrites the ``returning`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import free_port, machine, replace_section  # noqa: E402

#: ../shared/peers/php-zoiper beside the checkout (a worktree one level deeper finds it too), or
#: $BENCH_PEER_DIR (not ZENGINE_*: zengine reads those as settings and refuses unknown ones).
PEER = Path(os.environ.get("BENCH_PEER_DIR") or next(
    (base / "shared" / "peers" / "php-zoiper" for base in (ROOT.parent, ROOT.parent.parent)
     if (base / "shared" / "peers" / "php-zoiper").is_dir()),
    ROOT.parent / "shared" / "peers" / "php-zoiper"))
EXAMPLE = ROOT / "config" / "zengine.example.toml"
EXAMPLE_USERS = ROOT / "config" / "users.example.toml"
ALICE = "/id.php?username=alice&password=wonderland&version=1.14"
BOB = "/id.php?username=bob&password=builder&version=1.14"
STORM_USERS = int(os.environ.get("BENCH_STORM_USERS", "2000"))
STORM_CONCURRENCY = 200
STORM_PASSWORD = "returning-phone-password"
#: The storm users' stored hashes: argon2id at t=1, m=16 MiB (~15 ms a verification here), so
#: that the pass that makes them "returning" (verified once, as yesterday) stays short. What the
#: storm measures is the cache hit; a miss costs what the stored hash's parameters say.
STORM_HASHER = PasswordHasher(time_cost=1, memory_cost=16384, parallelism=1)
BARE_OWN = "bare hypercorn 2w, a socket per worker (zengine's launcher), prebuilt body"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_AT_START = " ".join(f"{x:.1f}" for x in os.getloadavg())


# -- processes -----------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def tree_cpu(pid: int) -> float:
    """Seconds of user + system CPU of ``pid`` and every live descendant."""
    total = 0
    for member in descendants(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def worker_pids(pid: int) -> list[int]:
    """The worker processes under a server's main process (not multiprocessing's helpers)."""
    found = []
    for member in descendants(pid)[1:]:
        try:
            cmdline = Path(f"/proc/{member}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline and b"semaphore_tracker" not in cmdline:
            found.append(member)
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_ready(server: Server, path: str, timeout: float = 60) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        try:
            if httpx.get(server.base + path, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start")


@contextlib.contextmanager
def started(name: str, argv: list[str], *, env: dict[str, str], log: Path, ready: str,
            cwd: Path = ROOT) -> Iterator[Server]:
    port = free_port()
    full_env = {**os.environ, **{k: v.replace("{port}", str(port)) for k, v in env.items()}}
    argv = [a.replace("{port}", str(port)) for a in argv]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, start_new_session=True)
    server = Server(name, port, proc)
    try:
        wait_ready(server, ready)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# -- load ----------------------------------------------------------------------------------


@dataclass
class Load:
    rate: float
    requests: int
    cpu_us: float
    p99: str
    errors: int


def wrk(server: Server, path: str, seconds: int, connections: int = 32) -> Load:
    cpu0 = tree_cpu(server.proc.pid)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                          "--latency",
                          server.base + path], capture_output=True, text=True,
                         check=True, timeout=seconds + 60).stdout
    cpu = tree_cpu(server.proc.pid) - cpu0

    def grab(pattern: str, default: str = "0") -> str:
        found = re.search(pattern, out)
        return found.group(1) if found else default

    requests = int(grab(r"(\d+) requests in"))
    errors = int(grab(r"Non-2xx or 3xx responses: (\d+)"))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Load(rate=float(grab(r"Requests/sec:\s+([\d.]+)")), requests=requests,
                cpu_us=cpu / max(requests, 1) * 1e6, p99=grab(r"(?m)^\s+99%\s+(\S+)", "?"),
                errors=errors)


@dataclass
class Storm:
    seconds: float
    served: int
    errors: int
    p99_ms: float


async def _storm(port: int, paths: list[str], concurrency: int) -> Storm:
    """Each user once, on its own connection (a phone that just started), ``concurrency`` at a
    time; a reply counts as served when it is a 200 carrying an account."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    served = errors = 0

    async def one(path: str) -> None:
        nonlocal served, errors
        async with gate:
            start = time.perf_counter()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 30)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                             .encode())
                reply = await asyncio.wait_for(reader.read(-1), 60)
                writer.close()
            except (OSError, TimeoutError):
                errors += 1
                return
            latencies.append(time.perf_counter() - start)
            if reply.startswith(b"HTTP/1.1 200") and b"<account>" in reply:
                served += 1
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(one(path) for path in paths))
    took = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else 0.0
    return Storm(took, served, errors, p99)


def storm(server: Server, paths: list[str], concurrency: int = STORM_CONCURRENCY) -> Storm:
    return asyncio.run(_storm(server.port, paths, concurrency))


def prime(server: Server, path: str, count: int = 12) -> None:
    """One login at a time on new connections, so that every worker verifies the password once
    (a burst of 32 first logins would all miss, and queue for the verification pool)."""
    asyncio.run(_storm(server.port, [path] * count, 1))


# -- fixtures ------------------------------------------------------------------------------


def storm_paths() -> list[str]:
    return [f"/id.php?username=u{n:05d}&password={STORM_PASSWORD}&version=1.14"
            for n in range(STORM_USERS)]


def write_fixtures(work: Path) -> dict[str, Path]:
    """zengine's users file and config, the peer's fixtures from zengine's own documents."""
    stored = STORM_HASHER.hash(STORM_PASSWORD)
    lines = [EXAMPLE_USERS.read_text(encoding="utf-8")]
    for n in range(STORM_USERS):
        lines.append(f'\n[users.u{n:05d}]\npassword_hash = "{stored}"\n'
                     f'[[users.u{n:05d}.accounts]]\nident = "u{n:05d}"\n'
                     f'sip_username = "{7000 + n}"\nsip_password = "sip-{n:05d}-pw"\n'
                     'domain = "sip.example.com"\n')
    users = work / "users.toml"
    users.write_text("".join(lines), encoding="utf-8")
    config = work / "zengine.toml"
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'users_file = "users.example.toml"', f'users_file = "{users}"')
    config.write_text(text + f'\n[login_cache]\nsecret = "{secrets.token_urlsafe(32)}"\n',
                      encoding="utf-8")
    docs = {}
    for name, user in (("alice", "alice"), ("bob", "bob"), ("storm", "u00000")):
        body = subprocess.run([sys.executable, "-m", "zengine.cli", "render", "--config",
                               str(config), "-u", user, "-V", "1.14"], capture_output=True,
                              check=True).stdout
        docs[name] = work / f"{name}.xml"
        docs[name].write_bytes(body)
    tsv = ["alice\twonderland\talice", "bob\tbuilder\tbob",
           *(f"u{n:05d}\t{STORM_PASSWORD}\tstorm" for n in range(STORM_USERS))]
    (work / "users.tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, str(PEER / "make_fixtures.py"), str(work / "peer"),
                    str(work / "users.tsv"), *(f"{k}={v}" for k, v in docs.items())],
                   check=True)
    return {"config": config, "alice": docs["alice"]}


def guard_redis() -> dict[str, str]:
    """Environment that puts the shared store on the local Redis, when a plugin offers it."""
    from zengine.runtime import build_runtime
    from zengine.settings import settings_from_mapping

    runtime = build_runtime(settings_from_mapping({}, environ={}))
    for name, config in runtime.plugin_configs.items():
        fields = type(config).model_fields
        if "redis_url" in fields:
            env = {f"ZENGINE_PLUGINS__{name.upper()}__REDIS_URL": "redis://127.0.0.1:6379/0"}
            if "key_prefix" in fields:
                env[f"ZENGINE_PLUGINS__{name.upper()}__KEY_PREFIX"] = (
                    f"zengine-bench-{secrets.token_hex(4)}:")
            return env
    return {}


# -- the run -------------------------------------------------------------------------------


def zengine(work: Path, config: Path, engine: str, workers: int,
            **env: str) -> contextlib.AbstractContextManager[Server]:
    # The guard's tenant flood limit (600 per 10 s by default) counts slow verifications
    # only (cache misses); the cold rows would still measure its 429s, so it is raised.
    flood = {"ZENGINE_PLUGINS__GUARD__TENANT_MAX_VERIFICATIONS": "1000000"}
    return started(f"zengine {engine} {workers}w",
                   [sys.executable, "-m", "zengine.cli", "serve", "--config", str(config)],
                   env={"ZENGINE_SERVER__PORT": "{port}", "ZENGINE_SERVER__ENGINE": engine,
                        "ZENGINE_SERVER__WORKERS": str(workers), **flood, **env},
                   log=work / f"zengine-{engine}-{workers}.log", ready="/healthz")


#: Bare hypercorn under zengine's own multi-worker launcher (a socket per worker, see
#: zengine.server.hypercorn_engine.worker_sockets), so that zengine's hypercorn rows can be
#: read against the same way of sharing connections as well as against stock hypercorn.
OWN_SOCKETS = """import sys
from hypercorn.config import Config
from zengine.server.hypercorn_engine import run_workers
config = Config()
config.workers = int(sys.argv[1])
config.bind = [f"127.0.0.1:{sys.argv[2]}"]
config.accesslog = sys.argv[3]
config.application_path = "bare_app:app"
raise SystemExit(run_workers(config))
"""


def bare(work: Path, engine: str, workers: int, body: Path) -> contextlib.AbstractContextManager[
        Server]:
    log = work / f"bare-{engine}.log"
    argv = {
        "hypercorn": [sys.executable, "-m", "hypercorn", "-w", str(workers), "-b",
                      "127.0.0.1:{port}", "--access-logfile", str(work / "bare-access.log"),
                      "bare_app:app"],
        "granian": [sys.executable, "-m", "granian", "--interface", "asgi", "--workers",
                    str(workers), "--host", "127.0.0.1", "--port", "{port}", "--access-log",
                    "bare_app:app"],
        "uvicorn": [sys.executable, "-m", "uvicorn", "--workers", str(workers), "--host",
                    "127.0.0.1", "--port", "{port}", "bare_app:app"],
        # hypercorn started the way `zengine serve` starts it: a listening socket per worker.
        "hypercorn-own-sockets": [sys.executable, "-c", OWN_SOCKETS, str(workers), "{port}",
                                  str(work / "bare-access.log")],
    }[engine]
    return started(f"bare {engine} {workers}w", argv, env={"BARE_BODY": str(body)}, log=log,
                   ready="/", cwd=ROOT / "bench")


def peer(work: Path) -> contextlib.AbstractContextManager[Server]:
    return started("PHP peer", ["bash", str(PEER / "start.sh"), "{port}", str(work / "peer")],
                   env={}, log=work / "peer.log", ready="/id.php")


#: The row groups ``--only`` chooses from; a run of all of them rewrites docs/benchmarks.md.
GROUPS = frozenset({"peer", "bare", "warm", "cold", "storm", "rss"})


def _groups(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = chosen - GROUPS
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(sorted(unknown)) or '(none given)'}; "
            f"choose from {','.join(sorted(GROUPS))}")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Returning phones beside the PHP peer and the bare servers, in one run; "
                    "rewrites the returning section of docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true",
                        help="3 s per row instead of $BENCH_SECONDS (8), and the RSS run stops "
                             "after 4 rounds instead of 50,000 requests (the report says how "
                             "many it served)")
    parser.add_argument("--only", type=_groups, default=GROUPS,
                        help="comma-separated row groups to run, of " + ",".join(GROUPS)
                             + "; a partial run prints its table and leaves "
                             "docs/benchmarks.md alone")
    args = parser.parse_args()
    only: frozenset[str] = args.only
    # The PHP peer runs on Debian's nginx and php-fpm; CI runs no benchmark, so it installs
    # neither php-fpm nor wrk: say what is missing instead of failing half way.
    missing = [name for name, found in (
        ("wrk", shutil.which("wrk")), ("nginx", shutil.which("nginx")),
        ("php-fpm", shutil.which("php-fpm") or sorted(Path("/usr/sbin").glob("php-fpm*"))))
        if not found]
    if missing:
        print(f"{', '.join(missing)} needed: apt-get install wrk nginx-light php-fpm php-xml",
              file=sys.stderr)
        return 1
    seconds = 3 if args.quick else int(os.environ.get("BENCH_SECONDS", "8"))
    work = Path(tempfile.mkdtemp(prefix="zengine-bench-"))
    files = write_fixtures(work)
    config = files["config"]
    rows: dict[str, Load] = {}
    notes: list[str] = []

    peer_storm: Storm | None = None
    if "peer" in only:
        with peer(work) as php:
            wrk(php, ALICE, 2)  # warm opcache
            rows["PHP peer, alice"] = wrk(php, ALICE, seconds)
            rows["PHP peer, bob"] = wrk(php, BOB, seconds)
            if "storm" in only:
                peer_storm = storm(php, storm_paths())
    bare_storms: list[tuple[str, Storm]] = []
    for engine in ("hypercorn", "hypercorn-own-sockets", "granian",
                   "uvicorn") if "bare" in only else ():
        for workers in ((1, 2) if engine == "hypercorn" else (2,)):
            with bare(work, engine, workers, files["alice"]) as server:
                wrk(server, "/", 2)
                rows[BARE_OWN if engine == "hypercorn-own-sockets" else
                     f"bare {engine} {workers}w, prebuilt body"] = wrk(server, "/", seconds)
                if "storm" in only and workers == 2 and engine != "hypercorn-own-sockets":
                    # The engine's floor for the storm: the same 2,000 new connections
                    # answered with a prebuilt body, no app work at all.
                    bare_storms.append((f"{BARE_STORM} {engine} 2w, prebuilt body",
                                        storm(server, storm_paths())))
    for engine, workers in (("hypercorn", 1), ("hypercorn", 2), ("granian", 2),
                            ("uvicorn", 2)) if "warm" in only else ():
        with zengine(work, config, engine, workers) as server:
            prime(server, ALICE)
            wrk(server, ALICE, 2)
            rows[f"zengine {engine} {workers}w, alice warm (cache hit)"] = wrk(
                server, ALICE, seconds)
            if engine in ("hypercorn", "granian"):
                prime(server, BOB)
                rows[f"zengine {engine} {workers}w, bob warm"] = wrk(server, BOB, seconds)
    if "cold" in only:
        with zengine(work, config, "hypercorn", 2,
                     ZENGINE_LOGIN_CACHE__ENABLED="false") as server:
            rows["zengine hypercorn 2w, alice cold (no cache: argon2id every login)"] = wrk(
                server, ALICE, seconds, connections=8)
    storms: list[tuple[str, Storm]] = [("PHP peer", peer_storm)] if peer_storm else []
    storms += bare_storms
    if "storm" in only:
        storms += restart_storm(work, config, notes)
    served, workers_rss = 0, []
    if "rss" in only:
        # RSS per worker after 50k requests (bounded: at most 12 rounds of `seconds`).
        with zengine(work, config, "hypercorn", 2) as server:
            prime(server, ALICE)
            rss_start = [rss_mb(pid) for pid in worker_pids(server.proc.pid)]
            for _ in range(4 if args.quick else 12):
                served += wrk(server, ALICE, seconds).requests
                if served >= 50_000:
                    break
            workers_rss = [rss_mb(pid) for pid in worker_pids(server.proc.pid)]
        notes.append("RSS per worker right after start and one login each: "
                     + ", ".join(f"{mb:.0f} MB" for mb in rss_start))
    if args.quick:
        notes.append("Run with `--quick` (3 s per row, a shorter RSS run).")
    if only != GROUPS:
        notes.append(f"Partial run (`--only {','.join(sorted(only))}`): docs/benchmarks.md "
                     "left as it was.")
    text = report(rows, storms, served, workers_rss, seconds, notes)
    if only == GROUPS:
        # Only a full run replaces the section: a partial one would drop the other rows.
        replace_section("returning", text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def restart_storm(work: Path, config: Path, notes: list[str]) -> list[tuple[str, Storm]]:
    """The users logged in once (yesterday), zengine restarts, all come back."""
    redis_env = guard_redis()
    store = "Redis (shared store)" if redis_env else "in-process (no shared store plugin)"
    with zengine(work, config, "hypercorn", 2, **redis_env) as server:
        # Yesterday's logins, a few at a time: each user's password verified once.
        primed = storm(server, storm_paths(), concurrency=4)
        # Without a shared store a restart empties the cache: measure on the same processes
        # instead, and say so.
        zen_storm = primed if redis_env else storm(server, storm_paths())
    guarded = None
    engines: list[tuple[str, Storm]] = []
    if redis_env:
        # The guard's tenant flood limit counts every login that reaches the chain, cache
        # hits included: raised for the measured storm, then the storm again at its default.
        with zengine(work, config, "hypercorn", 2, **redis_env) as server:
            zen_storm = storm(server, storm_paths())
        default = {"ZENGINE_PLUGINS__GUARD__TENANT_MAX_VERIFICATIONS": "600"}
        with zengine(work, config, "hypercorn", 2, **redis_env, **default) as server:
            guarded = storm(server, storm_paths())
        # The same restart on the other engines: a new connection per phone is the engine's
        # work as much as zengine's (about 60% of a storm request's CPU on hypercorn).
        for engine in ("granian", "uvicorn"):
            with zengine(work, config, engine, 2, **redis_env) as server:
                engines.append((f"zengine {engine} 2w after restart, cache in {store}",
                                storm(server, storm_paths())))
        notes.append("Every zengine row raises `[plugins.guard] tenant_max_verifications` "
                     "(default 600 verifications per 10 s, cache hits not counted) to "
                     "1,000,000; the last storm row is the same restart with the default.")
    else:
        notes.append("No plugin offered a shared store (Redis), so the storm ran on the same "
                     "processes after the priming pass instead of after a restart; each worker "
                     "only has the users it saw itself.")
    forget_redis(redis_env)
    storms = [("zengine hypercorn 2w, priming pass (4 at a time, every password verified)",
               primed),
              (f"zengine hypercorn 2w after restart, cache in {store}", zen_storm)]
    if guarded is not None:
        storms.append(("the same restart, guard flood limit at its default", guarded))
    return storms + engines


def forget_redis(env: dict[str, str]) -> None:
    """Delete the keys the run left under its own prefix (never a FLUSH: Redis is shared)."""
    url = next((v for k, v in env.items() if k.endswith("__REDIS_URL")), None)
    prefix = next((v for k, v in env.items() if k.endswith("__KEY_PREFIX")), None)
    if not url or not prefix:
        return
    import redis

    client = redis.Redis.from_url(url)
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            client.delete(*batch)
            batch.clear()
    if batch:
        client.delete(*batch)


#: The restart row the storm target compares with the peer's.
RESTART = "zengine hypercorn 2w after restart"
#: The storm rows of the bare engines (no app: the engine's own cost of the storm).
BARE_STORM = "bare"


def report(rows: dict[str, Load], storms: list[tuple[str, Storm]], served: int,
           workers_rss: list[float], seconds: int, notes: list[str]) -> str:
    """The section's text; a row or ratio whose rows did not run (``--only``) is left out."""
    peer = rows.get("PHP peer, alice")
    bare_h2 = rows.get("bare hypercorn 2w, prebuilt body")
    bare_own = rows.get(BARE_OWN)
    zen_h2 = rows.get("zengine hypercorn 2w, alice warm (cache hit)")
    warm = [(name, load) for name, load in rows.items()
            if name.startswith("zengine") and "alice warm" in name]
    peer_storm = next((s for name, s in storms if name == "PHP peer"), None)
    zen_storm = next((s for name, s in storms if name.startswith(RESTART)), None)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}, "
        f"load average {LOAD_AT_START} at the start and "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end (1, 5, 15 min, 2 cores; "
        "above 2 the machine was shared): absolute numbers move with the load, the ratios "
        "(same run, minutes apart) are what to read.",
        f"Command: `nox -s bench -- returning` (`bench/returning.py`; wrk -t2 -c32 for "
        f"{seconds}s per row, loopback; zengine with the example config, access log and request "
        "log on, JSON to a file; the PHP peer with its own settings, access log off).",
    ]
    if rows:
        lines += [
            "",
            "| what | requests/s | x PHP peer | server CPU µs/request | p99 | errors |",
            "|---|---|---|---|---|---|",
            *[f"| {name} | {load.rate:,.0f} | "
              f"{f'{load.rate / peer.rate:.2f}' if peer else '-'} | "
              f"{load.cpu_us:,.0f} | {load.p99} | {load.errors} |" for name, load in rows.items()],
        ]
    if storms:
        lines += [
            "",
            f"Restart storm: {STORM_USERS:,} distinct returning users (same password, each its "
            "own stored argon2id hash string at t=1, m=16 MiB), one new connection each, "
            f"{STORM_CONCURRENCY} at a time:",
            "",
            "| server | time to serve all | served | errors | p99 |",
            "|---|---|---|---|---|",
            *[f"| {name} | {s.seconds:.2f} s | {s.served:,} | {s.errors} | {s.p99_ms:.0f} ms |"
              for name, s in storms],
        ]
    targets = []
    if zen_h2 and bare_h2:
        targets.append(f"- warm login on hypercorn 2w vs bare hypercorn 2w: "
                       f"**{zen_h2.rate / bare_h2.rate:.2f}x** (target ≥ 0.8x); by server "
                       f"CPU per request {bare_h2.cpu_us / zen_h2.cpu_us:.2f}x "
                       f"({bare_h2.cpu_us:,.0f} against {zen_h2.cpu_us:,.0f} µs: the rate also "
                       "moves with how evenly the workers share wrk's connections)")
    if zen_h2 and bare_own:
        targets.append(f"- warm login on hypercorn 2w vs {BARE_OWN}: "
                       f"**{zen_h2.rate / bare_own.rate:.2f}x**; by server CPU per request "
                       f"{bare_own.cpu_us / zen_h2.cpu_us:.2f}x")
    if warm and peer:
        fastest_name, fastest = max(warm, key=lambda item: item[1].rate)
        targets.append(f"- fastest engine ({fastest_name}) vs the PHP peer: "
                       f"**{fastest.rate / peer.rate:.2f}x** (target ≥ 2x); by server "
                       f"CPU per request {peer.cpu_us / fastest.cpu_us:.2f}x "
                       f"({peer.cpu_us:,.0f} against {fastest.cpu_us:,.0f} µs)")
    bare_warm = [(name, load) for name, load in rows.items()
                 if name.startswith("bare") and "2w" in name]
    if bare_warm and peer:
        ceiling_name, ceiling = max(bare_warm, key=lambda item: item[1].rate)
        targets.append(f"- the ceiling of that target: the fastest bare engine ({ceiling_name}, "
                       f"no app work at all) is **{ceiling.rate / peer.rate:.2f}x** the PHP peer "
                       f"({ceiling.cpu_us:,.0f} µs per request)")
    if zen_storm and peer_storm:
        targets.append(f"- restart storm, zengine vs peer time: "
                       f"**{zen_storm.seconds / peer_storm.seconds:.2f}x** (target ≤ 1x), "
                       f"{zen_storm.errors} errors, {zen_storm.served:,}/{STORM_USERS:,} served")
    restarts = [(name, s) for name, s in storms
                if name.startswith("zengine") and "after restart" in name]
    if peer_storm and len(restarts) > 1:
        fastest_name, fastest_storm = min(restarts, key=lambda item: item[1].seconds)
        targets.append(f"- restart storm, fastest engine ({fastest_name}) vs peer time: "
                       f"**{fastest_storm.seconds / peer_storm.seconds:.2f}x**, "
                       f"{fastest_storm.errors} errors, "
                       f"{fastest_storm.served:,}/{STORM_USERS:,} served")
    bare_storm = [(name, s) for name, s in storms if name.startswith(BARE_STORM + " ")]
    if peer_storm and bare_storm:
        floor_name, floor = min(bare_storm, key=lambda item: item[1].seconds)
        targets.append(f"- the floor of the storm target: the fastest bare engine ({floor_name}) "
                       f"takes **{floor.seconds / peer_storm.seconds:.2f}x** the peer's time, "
                       f"{floor.errors} errors")
    if workers_rss:
        targets.append(f"- RSS per worker after {served:,} requests (hypercorn 2w): "
                       + ", ".join(f"{mb:.0f} MB" for mb in workers_rss)
                       + " (target ≤ 100 MB)")
    lines += ["", "Targets:", "", *targets, *[f"- {note}" for note in notes]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
