"""An unreachable database server skips locally and fails the run under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("ci", "expect_code", "expect_text"), [
    ("", 0, "1 skipped"),
    ("true", 1, "CI=true: a missing service fails the run"),
])
def test_missing_server(ci: str, expect_code: int, expect_text: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update(CI=ci, ZENGINE_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:9/x")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/sql/test_sql_migrations.py::test_downgrade_and_upgrade_again[postgres]"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == expect_code, output
    assert expect_text in output
