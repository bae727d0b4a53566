"""A larger fuzz run than the suite's, by hand: ``python bench/fuzz.py --requests 50000``.

Starts the real server (example config) on a free loopback port, sends seeded hostile raw
requests (tests/fuzzgen.py), prints the count of requests, of 5xx answers and of malformed or
missing answers. Bounded by ``--requests``; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fuzzgen  # noqa: E402
from tests.serverproc import running_server  # noqa: E402
from tests.test_fuzz_http import FAST  # noqa: E402

CONFIG = ROOT / "config" / "zengine.example.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests to send")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--engine", default="hypercorn", help="[server] engine to fuzz")
    parser.add_argument("--floor", action="store_true",
                        help="keep the 400 ms failure floor and the default argon2 cost")
    args = parser.parse_args(argv)
    env = {} if args.floor else dict(FAST)
    env["ZENGINE_SERVER__WORKERS"] = str(args.workers)
    env["ZENGINE_SERVER__ENGINE"] = args.engine
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, \
            running_server(CONFIG, Path(tmp), env=env) as server:
        tally = fuzzgen.run(server.address, args.seed, args.requests, threads=args.threads,
                            progress=lambda n: print(f"  {n} sent", file=sys.stderr))
        crashes = server.output().count("provision.crash")
    print(f"requests={tally.requests} 5xx={tally.server_errors} "
          f"problems={dict(tally.problems)} crashes={crashes} workers={args.workers} "
          f"engine={args.engine} seed={args.seed} seconds={time.monotonic() - start:.0f}")
    print(f"statuses={dict(sorted(tally.statuses.items()))}")
    for problem, example in tally.examples.items():
        print(f"  {problem}: {example[:300]!r}")
    return 1 if tally.server_errors or tally.problems or crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
