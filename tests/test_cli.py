"""The ``zengine`` command, as an operator uses it."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import EXAMPLE_CONFIG, ROOT
from zengine import cli
from zengine.passwords import verify_password

CFG = str(EXAMPLE_CONFIG)


def test_every_command_has_help() -> None:
    for command in ("serve", "check-config", "render", "plugins", "hash-password",
                    "make-secret"):
        result = subprocess.run([sys.executable, "-m", "zengine.cli", command, "--help"],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert "usage: zengine" in result.stdout
    top = subprocess.run([sys.executable, "-m", "zengine.cli", "--help"], capture_output=True,
                         text=True, check=True)
    for command in ("serve", "check-config", "render", "plugins", "hash-password",
                    "make-secret"):
        assert command in top.stdout


def test_render_prints_exactly_what_the_server_sends(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    assert cli.main(["render", "--config", CFG, "--username", "alice", "--version", "1.14"]) == 0
    out = capsysbinary.readouterr().out
    assert out == (ROOT / "tests" / "golden" / "mobile" / "alice-1.14.xml").read_bytes()


def test_render_unknown_user(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", "--config", CFG, "-u", "mallory"]) == 1
    assert "No backend knows user 'mallory'" in capsys.readouterr().err


def test_hash_password_reads_stdin_never_argv(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
    assert cli.main(["hash-password"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret pass")
    with pytest.raises(SystemExit):
        cli.main(["hash-password", "s3cret"])


def test_hash_password_refuses_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert cli.main(["hash-password"]) == 1


def test_check_config_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check-config", "--config", CFG]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[defaults]\nSIP_transport_type = "carrier-pigeon"\n')
    assert cli.main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "SIP_transport_type" in err and "carrier-pigeon" in err and "UDP, TCP, TLS" in err
    missing = tmp_path / "users.toml"
    cfg = tmp_path / "z.toml"
    cfg.write_text(f'[plugins.static]\nusers_file = "{missing.name}"\n')
    assert cli.main(["check-config", "--config", str(cfg)]) == 2
    assert "cannot read users file" in capsys.readouterr().err
    assert cli.main(["check-config", "--config", str(tmp_path / "nope.toml")]) == 2


def test_users_file_errors_are_precise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users.x]\npassword_hash = "plaintext"\n')
    cfg = tmp_path / "z.toml"
    cfg.write_text('[plugins.static]\nusers_file = "users.toml"\n')
    assert cli.main(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "users.x.password_hash" in err and "zengine hash-password" in err
    # An operator may have pasted a real password there: the value is masked.
    assert "plaintext" not in err and "<secret>" in err


def test_plugins_lists_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins", "--config", CFG]) == 0
    out = capsys.readouterr().out
    assert "static" in out and "zengine_authenticate" in out and "zengine 0.1.0" in out


def test_render_golden_is_well_formed() -> None:
    root = etree.parse(str(ROOT / "tests" / "golden" / "mobile" / "alice-1.14.xml")).getroot()
    assert root.findtext("prov_version") == "1.14"


def test_duplicate_ident_within_one_user_fails_at_load(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from zengine.passwords import hash_password

    account = 'ident = "a"\nsip_username = "1"\nsip_password = "x"\ndomain = "d"\n'
    users = tmp_path / "users.toml"
    users.write_text(f'[users.x]\npassword_hash = "{hash_password("pw")}"\n'
                     f"[[users.x.accounts]]\n{account}[[users.x.accounts]]\n{account}")
    cfg = tmp_path / "z.toml"
    cfg.write_text('[plugins.static]\nusers_file = "users.toml"\n')
    assert cli.main(["check-config", "--config", str(cfg)]) == 2
    assert "ident 'a' is already used by another account of this user" in capsys.readouterr().err


def test_make_secret_prints_or_writes_a_private_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["make-secret"]) == 0
    printed = capsys.readouterr().out.strip()
    assert len(printed) >= 43
    target = tmp_path / "login.secret"
    assert cli.main(["make-secret", "-o", str(target)]) == 0
    assert target.stat().st_mode & 0o777 == 0o600
    written = target.read_text().strip()
    assert len(written) >= 43 and written != printed
    # Never overwritten: an existing secret is a deployment's key.
    assert cli.main(["make-secret", "-o", str(target)]) == 1
    assert "cannot create" in capsys.readouterr().err
    assert target.read_text().strip() == written


def test_log_lines_after_an_in_process_command_go_to_the_current_stderr(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A command run in process configures logging while sys.stderr is something else (a
    # test's capture, an embedding program's buffer); once that stream is gone, later lines
    # must reach the sys.stderr of their time, not vanish into the closed one.
    import structlog

    gone = io.StringIO()
    monkeypatch.setattr(sys, "stderr", gone)
    assert cli.main(["check-config", "--config", CFG]) == 0
    monkeypatch.undo()
    gone.close()
    structlog.get_logger("zengine.test").warning("after.the.command")
    assert "after.the.command" in capsys.readouterr().err
