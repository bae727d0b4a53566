"""Instructions per request of a live one-worker server, under callgrind (the machine's load
does not move the count, unlike CPU time).

    python bench/server_instructions.py [--bare] [--requests 400] [--connections 4]

Starts ``zengine serve`` (hypercorn, one worker, the example config with a login cache
secret) or, with ``--bare``, hypercorn serving ``bench/bare_app.py``'s prebuilt body with its
stock access log to a file, under ``valgrind --tool=callgrind --instr-atstart=no``; sends 200
keep-alive logins of alice unmeasured, then ``--requests`` measured ones
(``callgrind_control -i on/off`` around them), and prints the count per request. Counts user
space only: a system call saved shows in ``strace -c``, not here. Bounded: every loop ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.returning import ALICE, EXAMPLE, EXAMPLE_USERS  # noqa: E402
from bench.run import free_port  # noqa: E402


async def _logins(port: int, path: str, count: int, connections: int) -> int:
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    each = max(count // connections, 1)

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(each):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:100])
            length = re.search(rb"(?i)content-length: (\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
        writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return each * connections


def _fixtures(work: Path) -> tuple[Path, Path]:
    config = work / "zengine.toml"
    config.write_text(EXAMPLE.read_text(encoding="utf-8").replace(
        'users_file = "users.example.toml"', f'users_file = "{EXAMPLE_USERS}"')
        + '\n[login_cache]\nsecret = "bench-server-instructions-0123456789"\n', encoding="utf-8")
    body = work / "alice.xml"
    body.write_bytes(subprocess.run(
        [sys.executable, "-m", "zengine.cli", "render", "--config", str(config), "-u", "alice",
         "-V", "1.14"], capture_output=True, check=True).stdout)
    return config, body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", action="store_true", help="bare hypercorn, prebuilt body")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind needed: apt-get install valgrind", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="zengine-instr-"))
    config, body = _fixtures(work)
    port = free_port()
    env = {**os.environ, "ZENGINE_SERVER__PORT": str(port), "ZENGINE_SERVER__WORKERS": "1",
           "BARE_BODY": str(body)}
    if args.bare:
        code = ("import asyncio; from hypercorn.config import Config; "
                "from hypercorn.asyncio import serve; import bare_app; c = Config(); "
                f"c.bind = ['127.0.0.1:{port}']; c.accesslog = '{work / 'access.log'}'; "
                "asyncio.run(serve(bare_app.app, c))")
        argv, cwd, path = [sys.executable, "-c", code], ROOT / "bench", "/"
    else:
        argv = [sys.executable, "-m", "zengine.cli", "serve", "--config", str(config)]
        cwd, path = ROOT, ALICE
    out = work / "callgrind.out"
    with (work / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", *argv],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                asyncio.run(_logins(port, path, 4, 1))
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        asyncio.run(_logins(port, path, 200, args.connections))
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True,
                       check=True, timeout=60)
        served = asyncio.run(_logins(port, path, args.requests, args.connections))
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True,
                       check=True, timeout=60)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True,
                       check=True, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    total = 0
    for dump in work.glob("callgrind.out*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    shutil.rmtree(work, ignore_errors=True)
    print(f"{'bare hypercorn' if args.bare else 'zengine hypercorn'} 1w: {served} requests, "
          f"{total / served / 1000:,.1f}k instructions per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
