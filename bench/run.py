"""Benchmarks for `nox -s bench`: measure, then rewrite the marked sections of
docs/benchmarks.md with the numbers, the machine and the command.

Load goes to 127.0.0.1 only, bounded in time.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
CONFIG = ROOT / "config" / "zengine.example.toml"
ALICE = "/id.php?username=alice&password=wonderland&version=1.14"
NO_PASSWORD = "/id.php?username=alice&version=1.14"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wrk(url: str, seconds: int, connections: int) -> tuple[float, str]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    rate = float(found.group(1))
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return rate, f"p50 {p50.group(1) if p50 else '?'}, p99 {p99.group(1) if p99 else '?'}"


def python_load(url: str, seconds: int) -> tuple[float, str]:
    # Fallback without wrk: one client, sequential, so it is a lower bound.
    count, deadline = 0, time.monotonic() + seconds
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            client.get(url).raise_for_status()
            count += 1
    return count / seconds, "sequential client"


def http_bench(workers: int, seconds: int) -> list[tuple[str, float, str]]:
    port = free_port()
    env = {**os.environ, "ZENGINE_SERVER__PORT": str(port), "ZENGINE_SERVER__ACCESS_LOG": "false",
           "ZENGINE_LOGGING__LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", "serve", "--config", str(CONFIG),
                             "--workers", str(workers)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        results = []
        for label, path, conns in (("alice login + document (argon2id verify)", ALICE, 8),
                                   ("error path, no password (server overhead)", NO_PASSWORD, 32)):
            httpx.get(base + path)  # warm up
            if shutil.which("wrk"):
                rate, lat = wrk(base + path, seconds, conns)
            else:
                rate, lat = python_load(base + path, seconds)
            results.append((f"{label}, {workers} worker(s)", rate, lat))
        return results
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def render_bench(count: int) -> float:
    """Document build + serialise for alice (two accounts), no authentication."""
    from zengine.models import ClientInfo, Version
    from zengine.pipeline import Outcome, render_for
    from zengine.runtime import build_runtime
    from zengine.settings import load_settings

    runtime = build_runtime(load_settings(CONFIG, environ={}))
    runtime.start()
    identity = runtime.hooks.find_identity("alice", runtime, runtime.settings.auth.chain)
    assert identity is not None
    client = ClientInfo("mobile", Version(1, 14), "1.14")
    start = time.perf_counter()
    for _ in range(count):
        render_for(identity, client, runtime, Outcome())
    return (time.perf_counter() - start) / count * 1e6


def argon2_ms(count: int = 20) -> float:
    from zengine.passwords import hash_password, verify_password

    stored = hash_password("wonderland")
    start = time.perf_counter()
    for _ in range(count):
        verify_password(stored, "wonderland")
    return (time.perf_counter() - start) / count * 1000


def replace_section(name: str, body: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    block = f"<!-- bench:{name} -->\n{body.rstrip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    DOC.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")


def main() -> int:
    if sys.argv[1:2] == ["returning"]:
        # Only the returning-phones run against the PHP peer (bench/returning.py), with its
        # own options (``--quick``).
        return subprocess.run([sys.executable, str(ROOT / "bench" / "returning.py"),
                               *sys.argv[2:]], check=False).returncode
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    rows = []
    for workers in (1, 2):
        rows.extend(http_bench(workers, seconds))
    per_doc = render_bench(500)
    verify = argon2_ms()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.",
        f"Command: `nox -s bench` (wrk -t2 for {seconds}s per row, loopback, example config,"
        " access log off).",
        "",
        "| what | requests/s | latency |",
        "|---|---|---|",
        *[f"| {label} | {rate:.1f} | {lat} |" for label, rate, lat in rows],
        "",
        f"- Document build + serialise for alice (2 accounts), in process: {per_doc:.0f} µs.",
        f"- One argon2id verification (t=3, m=64 MiB, p=4): {verify:.0f} ms.",
    ]
    replace_section("http", "\n".join(lines))
    print("\n".join(lines))
    for extra in [*sorted((ROOT / "bench").glob("*_logins.py")), ROOT / "bench" / "returning.py"]:
        print(f"\n== {extra.name}")
        subprocess.run([sys.executable, str(extra)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
