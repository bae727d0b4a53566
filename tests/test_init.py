"""``zengine init`` and the password prompt it shares with ``hash-password``."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from zengine import cli
from zengine.passwords import verify_password


def test_init_writes_private_files_with_absolute_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("first pass\n"))
    assert cli.main(["init", "etc", "--username", "carol", "--sip-domain", "pbx.test"]) == 0
    etc = tmp_path / "etc"
    config = tomllib.loads((etc / "zengine.toml").read_text())
    users_file = Path(config["plugins"]["static"]["users_file"])
    assert users_file == etc / "users.toml" and users_file.is_absolute()
    assert Path(config["plugins"]["portal"]["session_key_file"]).is_absolute()
    users = tomllib.loads(users_file.read_text())["users"]
    assert verify_password(users["carol"]["password_hash"], "first pass")
    [account] = users["carol"]["accounts"]
    assert account["domain"] == "pbx.test" and len(account["sip_password"]) >= 20
    assert len((etc / "portal-session.key").read_text().strip()) >= 32
    for path in etc.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert f"next: zengine serve --config {etc / 'zengine.toml'}" in capsys.readouterr().out
    # The config serves as written, from any working directory.
    monkeypatch.chdir("/")
    assert cli.main(["check-config", "--config", str(etc / "zengine.toml")]) == 0
    assert "warning" not in capsys.readouterr().out


def test_init_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "users.toml").write_text("# mine\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "users.toml").read_text() == "# mine\n"
    assert not (tmp_path / "zengine.toml").exists()


@pytest.mark.parametrize("username", ["", " bob", "bob "])
def test_init_refuses_blank_or_padded_usernames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, username: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["init", str(tmp_path / "x"), "--username", username]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--port", "99999", "init: --port 99999: Input should be less than or equal to 65535"),
    ("--sip-domain", "", "init: the SIP domain must not be empty"),
])
def test_init_refuses_what_serve_would_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        option: str, value: str, said: str) -> None:
    # Both wrote a starter that check-config and serve then refused.
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["init", str(tmp_path / "x"), option, value]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_init_into_a_directory_it_cannot_make_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    # A traceback (NotADirectoryError) before.
    assert cli.main(["init", str(tmp_path / "file" / "etc")]) == 2
    err = capsys.readouterr().err
    assert f"init: cannot write {tmp_path / 'file' / 'etc'}: Not a directory" in err
    assert "Traceback" not in err


def test_init_that_fails_part_way_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from zengine import starter

    real = starter._write_private

    def disk_full_at_the_config(path: Path, text: bytes) -> None:
        if path.name == starter.CONFIG_NAME:
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    monkeypatch.setattr(starter, "_write_private", disk_full_at_the_config)
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["init", str(tmp_path / "etc")]) == 2
    assert "zengine.toml: No space left on device" in capsys.readouterr().err
    assert list((tmp_path / "etc").iterdir()) == []


def test_init_whose_write_fails_leaves_no_half_written_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The disk fills up once the config file is created: the empty file was left behind,
    # and the next `zengine init` refused the directory ("already exists").
    real = os.fdopen

    def full_at_the_config(fd: int, *args: Any, **kwargs: Any) -> Any:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("zengine.toml"):
            os.close(fd)
            raise OSError(28, "No space left on device", "zengine.toml")
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", full_at_the_config)
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(["init", str(tmp_path / "etc")]) == 2
    monkeypatch.undo()
    assert "No space left on device" in capsys.readouterr().err
    assert list((tmp_path / "etc").iterdir()) == []


@pytest.mark.parametrize("option", ["--username", "--sip-domain", "DIR"])
def test_init_with_an_argument_that_is_not_utf8_is_one_line_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        option: str) -> None:
    # A non-UTF-8 byte in argv (os.fsdecode: a lone surrogate) cannot go into a TOML file:
    # a UnicodeEncodeError traceback before, with an empty users.toml left behind.
    bad = os.fsdecode(b"x\xff")
    directory = tmp_path / (bad if option == "DIR" else "etc")
    args = ["init", str(directory)] + ([option, bad] if option != "DIR" else [])
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "init: " in err and "UTF-8" in err and "Traceback" not in err
    assert not directory.exists() or list(directory.iterdir()) == []


@pytest.mark.parametrize("command", [["hash-password"], ["init", "DIR"]])
def test_ctrl_d_at_the_password_prompt_exits_cleanly(tmp_path: Path,
                                                     command: list[str]) -> None:
    """A real terminal (a pty): getpass sees end of input, zengine says so, no traceback."""
    master, slave = os.openpty()
    args = [arg.replace("DIR", str(tmp_path / "etc")) for arg in command]
    proc = subprocess.Popen([sys.executable, "-m", "zengine.cli", *args], stdin=slave,
                            stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not sent and b"Password" in output:
            os.write(master, b"\x04")
            sent = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    assert proc.wait(timeout=10) == 1
    text = output.decode(errors="replace")
    assert sent, text
    assert "Traceback" not in text and "no password given" in text
    assert not (tmp_path / "etc").exists()
