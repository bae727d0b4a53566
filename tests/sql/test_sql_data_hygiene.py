"""What the users CLI stores and writes: nothing XML cannot carry (the field named), CSV
exports safe to open in a spreadsheet and still importable, export files private and never
written through a symlink, and the SQLite database created 0600."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.sql.conftest import KEY_1
from tests.sql.test_sql_cli import Run, config, run, write_config  # noqa: F401 - fixtures

SQL_BACKENDS = ("sqlite",)  # refused before any database: one is enough


@pytest.fixture
def cli(run: Run) -> Run:  # noqa: F811 - test_sql_cli's fixture, under a name of our own
    return run


@pytest.mark.parametrize(("argv", "field"), [
    (("users", "add", "ann", "--no-password", "--display-name", "Ann\x1b[2J"), "display_name"),
    (("users", "add", "a\x07nn", "--no-password"), "username"),
    (("users", "add", "ann", "--no-password", "--tenant", "t\x00"), "tenant"),
])
def test_add_refuses_what_xml_cannot_carry(cli: Run, argv: tuple[str, ...], field: str) -> None:
    code, _, err = cli(*argv)
    assert code == 1 and f"field {field!r}" in err and "XML cannot carry" in err, err
    assert "ann" not in cli("users", "list")[1]


@pytest.mark.parametrize(("option", "field"), [("--name", "name"), ("--caller-id", "caller_id"),
                                               ("--sip-username", "sip_username")])
def test_add_account_refuses_what_xml_cannot_carry(cli: Run, option: str, field: str) -> None:
    assert cli("users", "add", "bea", "--no-password")[0] == 0
    argv = {"--ident": "b1", "--sip-username": "1001", "--domain": "d.example"}
    argv[option] = "bad\x07value"
    code, _, err = cli("users", "add-account", "bea", *[x for kv in argv.items() for x in kv],
                       stdin="sip-pw\n")
    assert code == 1 and f"field {field!r}" in err, err
    code, _, err = cli("users", "set-password", "bea", stdin="pw\x1b\n")
    assert code == 1 and "field 'password'" in err, err


def test_csv_export_neutralises_formulas_and_round_trips(cli: Run, tmp_path: Path) -> None:
    hostile = {"display_name": "=HYPERLINK(\"http://x\")", "caller_id": "+1 555 0100",
               "name": "@SUM(A1)", "sip_username": "-2+3", "domain": "\td.example"}
    assert cli("users", "add", "cy", "--no-password", "--display-name",
               hostile["display_name"])[0] == 0
    assert cli("users", "add", "quo", "--no-password", "--display-name", "'=already")[0] == 0
    assert cli("users", "add-account", "cy", "--ident", "c1",
               f"--sip-username={hostile['sip_username']}", "--domain", hostile["domain"],
               "--caller-id", hostile["caller_id"], "--name", hostile["name"],
               stdin="=sip\n")[0] == 0
    out = tmp_path / "users.csv"
    assert cli("users", "export", "--format", "csv", "--with-sip-passwords", "-o", str(out))[0] == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"), newline="")))
    for row in rows:
        for value in row.values():
            assert not value or value[0] not in "=+-@\t\r", rows
    cy = next(row for row in rows if row["username"] == "cy")
    assert cy["display_name"] == "'" + hostile["display_name"]
    assert cy["sip_password"] == "'=sip"
    # Importing the export gives back exactly what was stored.
    before = {name: json.loads(cli("users", "show", name)[1]) for name in ("cy", "quo")}
    assert cli("users", "import", str(out), "--replace")[0] == 0
    after = {name: json.loads(cli("users", "show", name)[1]) for name in ("cy", "quo")}
    assert after == before
    assert after["quo"]["display_name"] == "'=already"


def test_export_refuses_a_symlink(cli: Run, tmp_path: Path) -> None:
    assert cli("users", "add", "dee", "--no-password")[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    link = tmp_path / "export.json"
    link.symlink_to(victim)
    code, _, err = cli("users", "export", "-o", str(link))
    assert code == 1 and "symbolic link" in err, err
    assert victim.read_text(encoding="utf-8") == "precious" and link.is_symlink()



def test_export_into_a_missing_directory_names_the_file(cli: Run, tmp_path: Path) -> None:
    # The operator's cause, once: the file asked for, not the private temporary name next to
    # it or a Python exception class.
    assert cli("users", "add", "dan", "--no-password")[0] == 0
    target = tmp_path / "no-such-dir" / "users.json"
    code, _, err = cli("users", "export", "-o", str(target))
    assert code == 1 and f"{target}: cannot write" in err and "No such file" in err, err
    assert "Error:" not in err and ".users.json." not in err, err
    assert not target.parent.exists()

def test_export_replaces_a_file_of_someone_else_with_a_private_one(cli: Run,
                                                                   tmp_path: Path) -> None:
    assert cli("users", "add", "eve", "--no-password")[0] == 0
    out = tmp_path / "export.json"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o666)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(out, nobody.pw_uid, nobody.pw_gid)
    old_inode = out.stat().st_ino
    assert cli("users", "export", "-o", str(out))[0] == 0
    stat = out.stat()
    assert stat.st_ino != old_inode  # a new file, not the old one written into
    assert stat.st_uid == os.geteuid() and stat.st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["users"][0]["username"] == "eve"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export")]  # no temp left


def test_sqlite_database_is_created_private(cli: Run, tmp_path: Path) -> None:
    db = tmp_path / "new" / "zengine.db"
    db.parent.mkdir()
    cfg = write_config(tmp_path / "fresh.toml", make_url(f"sqlite:///{db}"), {"k1": KEY_1})
    old = os.umask(0o022)
    try:
        assert cli("db", "upgrade", cfg=cfg)[0] == 0
    finally:
        os.umask(old)
    assert db.stat().st_mode & 0o777 == 0o600
