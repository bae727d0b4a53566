"""The restart storm's long path, in process: a fresh app, every user once, no socket.

    python bench/storm_inproc.py [--users N] [--concurrency C] [--runs R] [--profile S]

What ``bench/returning.py``'s restart storm does to zengine itself, without the engine: the
guard and the verified-login cache on the local Redis (a key prefix of this run's own, its
keys deleted at the end, never a FLUSH), a priming pass in another process (each user's
password verified once, as yesterday), then ``--runs`` fresh processes (the restart), each
building the app, running its lifespan and sending every user's login once through the ASGI
app, ``--concurrency`` at a time. Each reports µs of CPU per request (``time.process_time``:
every thread of the process; how much of it in the kernel), Redis round trips per request
(packets redis-py sent) and redis-server's CPU per request (its ``INFO cpu``: shared with
whoever else uses that Redis).
``--profile S`` repeats the storm unmeasured in the first run for about ``S`` seconds (a new
app per storm), for ``py-spy record --pid``. Bounded: every loop ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "returning-phone-password"
REDIS_URL = "redis://127.0.0.1:6379/0"


def write_fixtures(work: Path, users: int) -> None:
    from argon2 import PasswordHasher

    # Cheap stored hashes (t=1, 1 MiB): the priming pass verifies each once, the storm never.
    stored = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    lines = [(ROOT / "config" / "users.example.toml").read_text(encoding="utf-8")]
    for n in range(users):
        lines.append(f'\n[users.u{n:05d}]\npassword_hash = "{stored}"\n'
                     f'[[users.u{n:05d}.accounts]]\nident = "u{n:05d}"\n'
                     f'sip_username = "{7000 + n}"\nsip_password = "sip-{n:05d}-pw"\n'
                     'domain = "sip.example.com"\n')
    (work / "users.toml").write_text("".join(lines), encoding="utf-8")
    text = (ROOT / "config" / "zengine.example.toml").read_text(encoding="utf-8").replace(
        'users_file = "users.example.toml"', f'users_file = "{work / "users.toml"}"')
    (work / "zengine.toml").write_text(
        text + f'\n[login_cache]\nsecret = "{secrets.token_urlsafe(32)}"\n', encoding="utf-8")


def environ(prefix: str) -> dict[str, str]:
    return {"ZENGINE_PLUGINS__GUARD__REDIS_URL": REDIS_URL,
            "ZENGINE_PLUGINS__GUARD__KEY_PREFIX": prefix,
            # The storm measures cache hits; the priming pass's misses must not hit the limit.
            "ZENGINE_PLUGINS__GUARD__TENANT_MAX_VERIFICATIONS": "1000000"}


def build(work: Path, prefix: str) -> Any:
    from zengine.app import create_app
    from zengine.log import configure_logging
    from zengine.settings import load_settings

    settings = load_settings(work / "zengine.toml", environ=environ(prefix))
    configure_logging(settings.logging, stream=open(work / "log.jsonl", "a", encoding="utf-8"))
    return create_app(settings)


class Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.started.set()

        await self.queue.put({"type": "lifespan.startup"})
        self.task = asyncio.create_task(self.app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                                 self.queue.get, send))
        await asyncio.wait_for(self.started.wait(), 60)
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


async def storm(app: Any, users: int, concurrency: int, port0: int = 40000) -> list[int]:
    """Each user once, ``concurrency`` at a time; the statuses (200 with an account: 200)."""
    gate = asyncio.Semaphore(concurrency)
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one(n: int) -> None:
        status, body = 0, b""

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body += message.get("body", b"")

        query = f"username=u{n:05d}&password={PASSWORD}&version=1.14".encode()
        # A new client port each: a new connection, as a phone that just started.
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/id.php", "raw_path": b"/id.php",
                 "root_path": "", "query_string": query,
                 "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"Zoiper/5.6")],
                 "client": ("127.0.0.1", port0 + n % 20000), "server": ("127.0.0.1", 8080)}
        async with gate:
            await app(scope, receive, send)
        statuses.append(status if status != 200 or b"<account>" in body else -200)

    await asyncio.gather(*(one(n) for n in range(users)))
    return statuses


def redis_cpu() -> float:
    import redis

    info = redis.Redis.from_url(REDIS_URL).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def count_round_trips() -> list[int]:
    """Counts the packets redis-py sends (one per command, one per pipeline or script call)."""
    from redis.connection import AbstractConnection

    sent = [0]
    original = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        original(self, command, check_health)  # type: ignore[no-untyped-call]  # redis-py's

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    return sent


async def prime(work: Path, prefix: str, users: int) -> None:
    async with Lifespan(build(work, prefix)) as app:
        statuses = await storm(app, users, 4)
    if set(statuses) != {200}:
        raise SystemExit(f"priming pass answered {sorted(set(statuses))}")


async def measure(work: Path, prefix: str, users: int, concurrency: int,
                  profile: float) -> dict[str, float]:
    sent = count_round_trips()
    if profile:
        print(f"pid {os.getpid()}: profiling for ~{profile} s", file=sys.stderr, flush=True)
        end = time.monotonic() + profile
        while time.monotonic() < end:  # bounded by the time
            async with Lifespan(build(work, prefix)) as app:
                await storm(app, users, concurrency, port0=50000)
    async with Lifespan(build(work, prefix)) as app:
        sent[0] = 0
        redis0, cpu0, wall0 = redis_cpu(), time.process_time(), time.perf_counter()
        sys0 = os.times().system
        statuses = await storm(app, users, concurrency)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        system = os.times().system - sys0
        trips, redis_s = sent[0], redis_cpu() - redis0
    bad = len([s for s in statuses if s != 200])
    return {"cpu_us": cpu / users * 1e6, "sys_us": system / users * 1e6, "wall_s": wall,
            "round_trips": trips / users, "redis_us": redis_s / users * 1e6, "errors": bad}


def forget(prefix: str) -> None:
    """Delete this run's keys (its own prefix only: the Redis is shared)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    batch = [key for key in client.scan_iter(match=prefix + "*", count=1000)]
    for start in range(0, len(batch), 1000):
        client.delete(*batch[start:start + 1000])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes, one storm each")
    parser.add_argument("--profile", type=float, default=0.0,
                        help="seconds of unmeasured storms first (first run), for py-spy")
    parser.add_argument("--phase", choices=("prime", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "prime":
        asyncio.run(prime(args.work, args.prefix, args.users))
        return 0
    if args.phase == "measure":
        print(json.dumps(asyncio.run(measure(args.work, args.prefix, args.users,
                                             args.concurrency, args.profile))))
        return 0
    work = Path(tempfile.mkdtemp(prefix="zengine-storm-"))
    prefix = f"zengine-storm-inproc-{secrets.token_hex(4)}:"
    child = [sys.executable, __file__, "--work", str(work), "--prefix", prefix,
             "--users", str(args.users), "--concurrency", str(args.concurrency)]
    try:
        write_fixtures(work, args.users)
        subprocess.run([*child, "--phase", "prime"], check=True, timeout=900)
        results = []
        for run in range(args.runs):
            extra = ["--profile", str(args.profile)] if args.profile and run == 0 else []
            out = subprocess.run([*child, "--phase", "measure", *extra], check=True,
                                 timeout=900 + args.profile,
                                 stdout=subprocess.PIPE, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(f"run {run + 1}: {result['cpu_us']:,.0f} µs CPU/request "
                  f"({result['sys_us']:,.0f} in the kernel), "
                  f"{result['round_trips']:.2f} Redis round trips/request, "
                  f"redis-server {result['redis_us']:.0f} µs/request, "
                  f"{result['wall_s']:.2f} s, {result['errors']} errors", flush=True)
        cpu = statistics.median(r["cpu_us"] for r in results)
        print(f"median {cpu:,.0f} µs CPU/request over {len(results)} runs "
              f"({args.users} users, {args.concurrency} at a time; load "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    finally:
        forget(prefix)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
