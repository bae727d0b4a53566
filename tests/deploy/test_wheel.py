"""The non-editable install of docs/deployment.md: a built wheel in a fresh virtualenv.

The wheel is built from this tree and installed with ``--no-deps`` into a new venv; only the
third-party dependencies come from the suite's venv (a ``.pth`` line), since this machine may not
download them again. zengine itself, its plugins, migrations and examples must all come from the
wheel: the test checks where ``zengine`` was imported from and runs the packaged migrations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300,
                            check=False, env=env, cwd="/")
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.subprocess
def test_wheel_installs_with_migrations_and_examples(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", dist, ROOT)
    [wheel] = dist.glob("zengine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("zengine_sql/migrations/env.py", "zengine_sql/migrations/script.py.mako",
                   "zengine_sql/migrations/versions/0001_initial.py",
                   "zengine_tokens/migrations/env.py", "zengine_portal/templates/",
                   "zengine/py.typed"):
        assert any(name.startswith(needed) for name in names), needed
    data = {name.split("/data/", 1)[1] for name in names if ".data/data/" in name}
    assert {"share/zengine/examples/zengine.example.toml",
            "share/zengine/examples/users.example.toml",
            "share/zengine/contrib/zengine.conf",
            "share/zengine/contrib/zengine.service"} <= data

    target = tmp_path / "opt-zengine"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                   .strip())
    # Third-party dependencies only: the suite venv's site-packages, after the wheel's.
    deps = sysconfig.get_paths()["purelib"]
    (purelib / "zz-suite-deps.pth").write_text(deps + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel)

    where = run(python, "-c", "import zengine, zengine_sql; print(zengine.__file__); "
                              "print(zengine_sql.__file__)")
    assert all(line.startswith(str(target)) for line in where.split()), where
    example = target / "share" / "zengine" / "examples" / "zengine.example.toml"
    zengine = target / "bin" / "zengine"
    env = {**os.environ, "ZENGINE_PLUGINS__SQL__URL": f"sqlite:///{tmp_path / 'state.db'}",
           # The suite's venv holds the example third-party plugin as an editable install: its
           # entry point is visible through the .pth line above, its import hook is not (a .pth
           # file inside a directory that a .pth line added is never run). It is not part of
           # the wheel under test, so block it before entry points load.
           "ZENGINE_PLUGINS__DISABLED": '["example_billing"]'}
    env.pop("ZENGINE_CONFIG", None)
    run(zengine, "db", "upgrade", "--config", example, env=env)
    assert "probe sql: ready" in run(zengine, "check-config", "--probe", "--config", example,
                                     env=env)
