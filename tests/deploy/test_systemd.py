"""contrib/systemd/zengine.service, checked by systemd's own tools (no running systemd needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, service_missing

UNIT = ROOT / "contrib" / "systemd" / "zengine.service"
INSTALLED = "/opt/zengine/bin/zengine"


def unit_here(tmp_path: Path) -> Path:
    """The unit with one change: ExecStart's venv is this suite's (verify checks it exists)."""
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED} serve --config /etc/zengine/zengine.toml" in text
    copy = tmp_path / "zengine.service"
    copy.write_text(text.replace(INSTALLED, str(Path(sys.executable).parent / "zengine")))
    return copy


def analyze() -> str:
    found = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(found).exists():
        service_missing("systemd-analyze is not installed (apt-get install systemd)")
    return found


def test_systemd_unit_verifies_clean(tmp_path: Path) -> None:
    result = subprocess.run([analyze(), "verify", "--man=no", str(unit_here(tmp_path))],
                            capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 even for unknown keys and bad values: any message is a failure.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), \
        result.stdout + result.stderr


def test_systemd_unit_is_hardened(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in ("DynamicUser=yes", "User=zengine", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "StateDirectory=zengine",
                 "ConfigurationDirectory=zengine", "CapabilityBoundingSet=\n"):
        assert line in text, line
    # systemd's own score: 0 is locked down, 10 is exposed; --threshold is in tenths.
    result = subprocess.run([analyze(), "security", "--offline=yes", "--no-pager",
                             "--threshold=20", str(unit_here(tmp_path))],
                            capture_output=True, text=True, timeout=60, check=False)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        service_missing("this systemd-analyze cannot score a unit offline (systemd < 252)")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level for zengine.service" in result.stdout


def test_systemd_unit_pid_file_is_in_its_runtime_directory() -> None:
    """`zengine reload --pid-file /run/zengine/zengine.pid` finds the unit's server: the
    directory is the unit's own (writable under ProtectSystem=strict), and reload still
    checks the config before SIGHUP to the main process."""
    text = UNIT.read_text()
    assert "--pid-file /run/zengine/zengine.pid" in text
    assert "RuntimeDirectory=zengine\n" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert text.index("ExecReload=/opt/zengine/bin/zengine check-config") < \
        text.index("ExecReload=/bin/kill -HUP $MAINPID")
