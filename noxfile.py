"""Developer sessions. `nox` runs tests, lint and typecheck; `nox -s bench|serve` on demand."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

SOURCES = ["zengine", "plugins", "tests", "bench", "examples", "noxfile.py"]
#: A third-party plugin as an ISP would write it: installed next to zengine, its own tests.
EXAMPLE = "examples/zengine-example-billing"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (real slapd, PostgreSQL and MariaDB where available), then
    the example plugin's own tests, with its own pytest configuration."""
    session.install("-e", ".[test,fast]", "-e", EXAMPLE)
    session.run("pytest", *session.posargs)
    if not session.posargs:
        session.run("pytest", "-c", f"{EXAMPLE}/pyproject.toml", "--rootdir", EXAMPLE,
                    "-p", "no:cacheprovider", f"{EXAMPLE}/tests")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on every Python file."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on zengine/, plugins/, tests/ and bench/ (pyproject's ``files``), and on
    the example plugin. The test and fast extras too: mypy reads what tests and bench import."""
    session.install("-e", ".[typecheck,test,fast]", "-e", EXAMPLE)
    session.run("mypy")
    session.run("mypy", f"{EXAMPLE}/src", f"{EXAMPLE}/tests")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks; numbers go to docs/benchmarks.md."""
    session.install("-e", ".[test,fast]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Serve the example config on http://127.0.0.1:8080/."""
    session.install("-e", ".")
    session.run("zengine", "serve", "--config", "config/zengine.example.toml", *session.posargs)
