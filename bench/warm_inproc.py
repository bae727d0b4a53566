"""A returning login's own cost, in process: the ASGI app called directly, no engine, no socket.

    python bench/warm_inproc.py [--requests N] [--user alice] [--rounds R]

Builds the app from ``config/zengine.example.toml`` (its users file, a login cache secret),
logs JSON lines to a temporary file, runs the lifespan, logs the user in once (the slow
verification) and then sends ``--requests`` identical logins, ``--rounds`` times, timing each
round with ``time.process_time``. Prints µs of CPU per request per round and the median, so two
checkouts can be compared (A/B) on a busy machine better than with wrk: the engines' share is
left out on purpose (``bench/returning.py`` measures it). ``--profile`` keeps running for
``py-spy record --pid``. Bounded: every loop ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def build(work: Path) -> Any:
    from zengine.app import create_app
    from zengine.log import configure_logging
    from zengine.settings import load_settings

    text = (ROOT / "config" / "zengine.example.toml").read_text(encoding="utf-8").replace(
        'users_file = "users.example.toml"',
        f'users_file = "{ROOT / "config" / "users.example.toml"}"')
    config = work / "zengine.toml"
    config.write_text(text + '\n[login_cache]\nsecret = "bench-in-process-secret-0123456789"\n',
                      encoding="utf-8")
    settings = load_settings(config, environ={})
    configure_logging(settings.logging, stream=open(work / "log.jsonl", "a", encoding="utf-8"))
    return create_app(settings)


async def main(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="zengine-inproc-"))
    app = build(work)
    query = f"username={args.user}&password={PASSWORDS[args.user]}&version=1.14".encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/id.php", "raw_path": b"/id.php",
             "root_path": "", "query_string": query,
             "headers": [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"Zoiper/5.6")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}
    sent: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    done = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            done.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                       startup.get, lifespan_send))
    await asyncio.wait_for(done.wait(), 30)
    for _ in range(3):  # the slow verification, then the document and the memo
        await app(dict(scope), receive, send)
    if sent[-1] != 200:
        print(f"login answered {sent[-1]}", file=sys.stderr)
        return 1
    if args.profile:
        print(f"pid {os.getpid()}: profiling for {args.profile} s", flush=True)
        end = time.monotonic() + args.profile
        while time.monotonic() < end:
            for _ in range(200):
                await app(dict(scope), receive, send)
    results = []
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.requests):
            await app(dict(scope), receive, send)
        results.append((time.process_time() - start) / args.requests * 1e6)
    assert set(sent) == {200}, set(sent)
    print(" ".join(f"{r:.1f}" for r in results), f"median {statistics.median(results):.1f} µs")
    await startup.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 30)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--user", choices=sorted(PASSWORDS), default="alice")
    parser.add_argument("--profile", type=float, default=0.0,
                        help="seconds to run unmeasured first, for py-spy")
    sys.exit(asyncio.run(main(parser.parse_args())))
