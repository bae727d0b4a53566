"""The metrics plugin's cost on the request path: a returning phone's request (verified-login
cache and document cache both hit) through the whole pipeline, in process, with the plugin
absent, installed but off, on in one process, and on in multiprocess mode (files per worker).

Each variant runs the core's ``handle`` plus the ``zengine_request_finished`` call the HTTP
endpoint makes, with the JSON log going to /dev/null. Bounded loops (5 rounds of ``--count``
requests, median). Rewrites the ``metrics`` section of docs/benchmarks.md. Usage::

    .venv/bin/python bench/metrics.py [--count 3000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import machine, replace_section  # noqa: E402
from zengine.log import configure_logging  # noqa: E402
from zengine.models import RequestSummary  # noqa: E402
from zengine.pipeline import handle  # noqa: E402
from zengine.request import build_request  # noqa: E402
from zengine.runtime import Runtime, build_runtime  # noqa: E402
from zengine.settings import LoggingSettings, load_settings  # noqa: E402
from zengine.testing import plugin_list  # noqa: E402

CONFIG = ROOT / "config" / "zengine.example.toml"
QUERY = b"u=alice&p=wonderland&v=1.14"
BUILTINS = ("zoiper", "static", "urls", "audit")


def runtime_for(plugins: tuple[str, ...], environ: dict[str, str]) -> Runtime:
    runtime = build_runtime(load_settings(CONFIG, environ=environ), load_entrypoints=False,
                            plugins=plugin_list(*plugins))
    if "metrics" in plugins:
        # What create_app does: a runtime that builds an app serves metrics.
        runtime.hooks.register_routes(runtime)
    runtime.start()
    return runtime


def one_round(runtime: Runtime, count: int) -> float:
    """Microseconds per request over ``count`` returning-phone requests."""
    def make() -> object:
        return build_request(path="/id.php", query=QUERY, body=b"", headers={},
                             client_addr="192.0.2.10", settings=runtime.settings)

    # CPU time of this process, not wall time: on a loaded machine the wait for a core would
    # drown the difference measured.
    started = time.process_time()
    for _ in range(count):
        reply = handle(make, runtime, path="/id.php")  # type: ignore[arg-type]
        runtime.hooks.request_finished(RequestSummary(
            "/id.php", reply.status, reply.outcome, reply.family, 0.001, reply.tenant), runtime)
    return (time.process_time() - started) / count * 1e6


def measure(runtimes: list[Runtime], count: int) -> list[float]:
    """Median of 5 rounds each, the runtimes' rounds interleaved so that a change in the
    machine's load falls on all of them alike."""
    for runtime in runtimes:
        one_round(runtime, 10)  # warm both caches
    rounds: list[list[float]] = [[] for _ in runtimes]
    for _ in range(5):
        for i, runtime in enumerate(runtimes):
            rounds[i].append(one_round(runtime, count))
    return [statistics.median(r) for r in rounds]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="requests per round")
    args = parser.parse_args()
    with open(os.devnull, "w") as null:
        # Warning level: the three info lines per request would cost more than what is
        # measured here (and differ by nothing between the variants).
        configure_logging(LoggingSettings(format="json", level="warning"), stream=null)
        tmp = tempfile.mkdtemp(prefix="zengine-bench-metrics-")
        on = {"ZENGINE_PLUGINS__METRICS__ENABLED": "true",
              "ZENGINE_PLUGINS__METRICS__MULTIPROCESS_DIR": tmp}
        variants = [
            ("plugin not loaded", BUILTINS, {}),
            ("installed, `enabled = false` (the default)", (*BUILTINS, "metrics"), {}),
            ("on, one worker", (*BUILTINS, "metrics"), on),
            ("on, multiprocess mode (`workers = 2`)", (*BUILTINS, "metrics"),
             {**on, "ZENGINE_SERVER__WORKERS": "2"}),
        ]
        results: list[float] = []
        # The multiprocess variant alone, after the others: it switches prometheus-client's
        # value class for the whole process.
        for group in (variants[:3], variants[3:]):
            runtimes = [runtime_for(plugins, environ) for _, plugins, environ in group]
            try:
                results.extend(measure(runtimes, args.count))
            finally:
                for runtime in runtimes:
                    runtime.stop()
        base = results[0]
        rows = [f"| {label} | {took:.1f} µs | {took - base:+.1f} µs |"
                for (label, _, _), took in zip(variants, results, strict=True)]
    load = os.getloadavg()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
        f"Command: `.venv/bin/python bench/metrics.py --count {args.count}` (in process, "
        "log level warning to /dev/null; a returning phone: login cache and document cache "
        "hit; CPU time of the process, median of 5 interleaved rounds).",
        "",
        "| metrics | CPU per request (pipeline + `zengine_request_finished`) | vs not loaded |",
        "|---|---|---|",
        *rows,
    ]
    replace_section("metrics", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
