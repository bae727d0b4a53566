"""``zengine users`` and ``zengine db`` through the real command line (``zengine.cli.main``)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import URL, make_url

import zengine_sql
from tests.sql.conftest import KEY_1, KEY_2, make_runtime, url_text
from zengine.cli import main
from zengine.models import Credentials, Identity, ProvisionRequest
from zengine_sql.schema import ACCOUNTS, USERS

REQUEST = ProvisionRequest(path="/provision", params={}, headers={}, client_addr="127.0.0.1",
                           credentials=None, version_raw=None)
Run = Callable[..., tuple[int, str, str]]


def write_config(path: Path, url: URL, keys: dict[str, str], current: str | None = None,
                 extra: tuple[str, ...] = ()) -> Path:
    # Profiles the users below name: the CLI refuses profiles the config does not define.
    lines = ["[profiles.basic]", 'SIP_transport_type = "UDP"',
             "[plugins.sql]", f"url = {json.dumps(url_text(url))}"]
    lines += extra
    if current:
        lines.append(f"encryption_key_id = {json.dumps(current)}")
    lines.append("[plugins.sql.encryption_keys]")
    lines += [f"{kid} = {json.dumps(key)}" for kid, key in keys.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def config(own_db: URL, tmp_path: Path) -> Path:
    return write_config(tmp_path / "zengine.toml", own_db, {"k1": KEY_1})


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        config: Path) -> Run:
    for name in ("ZENGINE_CONFIG", "ZENGINE_PLUGINS__SQL__URL"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*argv: str, stdin: str = "", cfg: Path | None = None) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main([*argv, "--config", str(cfg or config)])
        out, err = capsys.readouterr()
        return code, out, err
    return invoke


def _login(config: Path, username: str, password: str) -> object:
    from zengine.runtime import build_runtime
    from zengine.settings import load_settings

    runtime = build_runtime(load_settings(config, environ={}), load_entrypoints=False,
                            plugins=[("sql", zengine_sql)])
    runtime.start()
    try:
        return runtime.hooks.authenticate(Credentials(username, SecretStr(password)), REQUEST,
                                          runtime, ("sql",))
    finally:
        runtime.stop()


def _accounts(url: URL, username: str, keys: dict[str, str] | None = None) -> dict[str, str]:
    runtime = make_runtime({"url": url_text(url), "encryption_keys": keys or {"k1": KEY_1}})
    try:
        return {a.ident: a.sip_password.get_secret_value() for a in
                runtime.hooks.load_accounts(Identity(username, backend="sql"), runtime)}
    finally:
        runtime.stop()


def test_add_list_show_login(run: Run, config: Path) -> None:
    code, out, _ = run("users", "add", "alice", "--profile", "basic", "--tenant", "isp1",
                       "--overrides", '{"SIP_transport_type": "TLS"}', stdin="s3cret-pw\n")
    assert code == 0, out
    code, out, _ = run("users", "list")
    assert code == 0 and "alice\ttenant=isp1\tprofile=basic\taccounts=0" in out
    code, out, _ = run("users", "show", "alice")
    shown = json.loads(out)
    assert shown["password_hash"] == "<set>" and shown["overrides"] == {
        "SIP_transport_type": "TLS"}
    assert isinstance(_login(config, "alice", "s3cret-pw"), Identity)


def test_passwords_never_on_argv(run: Run) -> None:
    with pytest.raises(SystemExit) as exc:
        run("users", "add", "bob", "--password", "x")
    assert exc.value.code == 2
    code, _, err = run("users", "add", "bob", stdin="\n")
    assert code == 1 and "empty password refused" in err


def test_bad_overrides_are_refused(run: Run) -> None:
    code, _, err = run("users", "add", "bob", "--no-password", "--overrides", '{"stun": {"x": 1}}')
    assert code == 1 and "unknown field 'stun/x'" in err


def test_accounts_passwords_disable_delete(run: Run, own_db: URL) -> None:
    assert run("users", "add", "carol", "--no-password")[0] == 0
    code, _out, err = run("users", "add-account", "carol", "--ident", "c1", "--sip-username",
                         "1001", "--domain", "sip.example.net", "--caller-id", "Carol",
                         stdin="sip-pw-1\n")
    assert code == 0, err
    assert run("users", "add-account", "carol", "--ident", "c2", "--sip-username", "1002",
               "--domain", "sip.example.net", stdin="sip-pw-2\n")[0] == 0
    assert run("users", "set-password", "carol", "--sip", "c2", stdin="sip-pw-2b\n")[0] == 0
    assert _accounts(own_db, "carol") == {"c1": "sip-pw-1", "c2": "sip-pw-2b"}
    code, _, err = run("users", "set-password", "carol", "--sip", "nope", stdin="x\n")
    assert code == 1 and "no account 'nope'" in err
    assert run("users", "disable", "carol")[0] == 0
    assert _accounts(own_db, "carol") == {}
    assert run("users", "enable", "carol")[0] == 0
    assert run("users", "delete", "carol", "--account", "c1")[0] == 0
    assert _accounts(own_db, "carol") == {"c2": "sip-pw-2b"}
    assert run("users", "delete", "carol")[0] == 0
    code, _, err = run("users", "show", "carol")
    assert code == 1 and "no user 'carol'" in err


CSV = """username,password,profile,tenant,enabled,ident,sip_username,sip_password,domain,transport
dan,pw-dan,basic,isp1,true,d1,2001,sip-d1,sip.example.net,TLS
dan,,,,,d2,2002,sip-d2,sip.example.net,
eve,,,isp2,no,e1,3001,sip-e1,sip.example.net,UDP
"""


def test_import_csv(run: Run, tmp_path: Path, own_db: URL, config: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV, encoding="utf-8")
    code, out, err = run("users", "import", str(path))
    assert code == 0, err
    assert "imported 2 users, 3 accounts" in out
    assert "importing users" in err  # the progress bar
    assert _accounts(own_db, "dan") == {"d1": "sip-d1", "d2": "sip-d2"}
    assert isinstance(_login(config, "dan", "pw-dan"), Identity)
    code, out, _ = run("users", "list", "--json")
    listed = {u["username"]: u for u in json.loads(out)}
    assert listed["eve"]["enabled"] is False and listed["eve"]["has_password"] is False


@pytest.mark.parametrize(("text", "message"), [
    (CSV.replace(",no,e1", ",maybe,e1"), "users.csv row 4, column 'enabled': 'maybe'"),
    (CSV.replace("sip-d2,", ","), "users.csv row 3, column 'sip_password': is required"),
    (CSV.replace(",UDP", ",SCTP"), "users.csv row 4, column 'transport'"),
    (CSV.replace(",basic,", ",nosuch,"), "users.csv row 2, column 'profile': unknown profile "
                                         "'nosuch'; defined in the config: basic"),
    (CSV.replace("transport\n", "transprt\n"), "unknown column(s) ['transprt']"),
])
def test_import_errors_name_row_and_column(run: Run, tmp_path: Path, own_db: URL,
                                           text: str, message: str) -> None:
    path = tmp_path / "users.csv"
    path.write_text(text, encoding="utf-8")
    code, _, err = run("users", "import", str(path))
    assert code == 1 and message in err, err
    assert run("users", "list")[1] == ""


def test_import_is_all_or_nothing(run: Run, tmp_path: Path, own_db: URL) -> None:
    assert run("users", "add", "zoe", "--no-password")[0] == 0
    data = {"users": [
        {"username": "amy", "accounts": [{"ident": "a", "sip_username": "a",
                                          "sip_password": "p", "domain": "d.example"}]},
        {"username": "zoe"},  # exists: the whole import must roll back, amy included
    ]}
    path = tmp_path / "users.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = run("users", "import", str(path))
    # The row it came from, not its position among the users ("user 2").
    assert code == 1 and "users.json row 2, user 'zoe'" in err and "already exists" in err, err
    engine = sa.create_engine(own_db, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.select(USERS.c.username)).scalars().all() == ["zoe"]
        assert conn.execute(sa.select(sa.func.count()).select_from(ACCOUNTS)).scalar() == 0
    engine.dispose()
    assert run("users", "import", str(path), "--replace")[0] == 0


def test_export_round_trip(run: Run, tmp_path: Path, own_db: URL, config: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV, encoding="utf-8")
    assert run("users", "import", str(path))[0] == 0
    code, plain_export, _ = run("users", "export")
    assert code == 0 and "sip-d1" not in plain_export  # no SIP password unless asked
    out = tmp_path / "export.json"
    assert run("users", "export", "--with-sip-passwords", "-o", str(out))[0] == 0
    assert run("users", "export", "--format", "csv")[1].startswith("username,password_hash,")
    for name in ("dan", "eve"):
        assert run("users", "delete", name)[0] == 0
    assert run("users", "import", str(out))[0] == 0
    assert _accounts(own_db, "dan") == {"d1": "sip-d1", "d2": "sip-d2"}
    # The argon2 hash travelled, so the old password still works.
    assert isinstance(_login(config, "dan", "pw-dan"), Identity)


def test_db_upgrade_current_generate_and_rotate(run: Run, tmp_path: Path, own_db: URL) -> None:
    fresh = write_config(tmp_path / "fresh.toml", make_url(f"sqlite:///{tmp_path}/new.db"),
                         {"k1": KEY_1})
    code, out, _ = run("db", "current", cfg=fresh)
    assert code == 0 and out.startswith("empty")
    code, out, _ = run("db", "upgrade", cfg=fresh)
    assert code == 0 and "schema at revision 0002" in out
    code, out, _ = run("db", "generate-key", cfg=fresh)
    assert len(base64.urlsafe_b64decode(out.strip())) == 32

    assert run("users", "add", "fay", "--no-password")[0] == 0
    assert run("users", "add-account", "fay", "--ident", "f1", "--sip-username", "f",
               "--domain", "d.example", stdin="sip-f1\n")[0] == 0
    rotated = write_config(tmp_path / "rotated.toml", own_db, {"k1": KEY_1, "k2": KEY_2}, "k2")
    code, out, _ = run("db", "rotate-key", cfg=rotated)
    assert code == 0 and "re-encrypted 1 SIP passwords under key 'k2'" in out
    assert _accounts(own_db, "fay", {"k2": KEY_2}) == {"f1": "sip-f1"}


def test_db_check(run: Run, tmp_path: Path, own_db: URL) -> None:
    code, out, _ = run("db", "check")
    assert code == 0 and "own schema at revision 0002: OK" in out
    fresh = write_config(tmp_path / "fresh.toml", make_url(f"sqlite:///{tmp_path}/new.db"), {})
    code, _, err = run("db", "check", cfg=fresh)
    assert code == 1 and "run `zengine db upgrade`" in err
    mapped = write_config(tmp_path / "mapped.toml", own_db, {},
                          extra=('mode = "mapping"', 'preset = "kamailio"'))
    code, _, err = run("db", "check", cfg=mapped)
    assert code == 1 and "table 'subscriber' does not exist" in err
    engine = sa.create_engine(own_db, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE subscriber (username VARCHAR(64), domain VARCHAR(64),"
                             " password VARCHAR(64))"))
    try:
        code, _, err = run("db", "check", cfg=mapped)
        assert code == 1 and "table 'subscriber' has no column 'ha1'" in err
        code, _, err = run("db", "upgrade", cfg=mapped)
        assert code == 1 and "mode = 'mapping'" in err
        code, _, err = run("users", "list", cfg=mapped)
        assert code == 1 and "mode = 'mapping'" in err
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE subscriber"))
        engine.dispose()


def test_unconfigured(run: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    code, _, err = run("users", "list", cfg=empty)
    assert code == 1 and "not configured" in err


def test_add_and_add_account_refuse_what_would_break_provisioning(run: Run) -> None:
    code, _, err = run("users", "add", "gus", "--profile", "nosuch", stdin="pw\n")
    assert code == 1 and "unknown profile 'nosuch'" in err
    assert run("users", "add", "gus", "--no-password")[0] == 0
    code, _, err = run("users", "add-account", "gus", "--ident", "g1", "--sip-username", "1",
                       "--domain", "d.example", "--transport", "XYZ", stdin="sip\n")
    assert code == 1 and "'XYZ': allowed UDP, TCP, TLS" in err
    code, _, err = run("users", "add-account", "gus", "--ident", "g1", "--sip-username", "1",
                       "--domain", "d.example", "--transport", "tls", stdin="sip\n")
    assert code == 0, err
    code, out, _ = run("users", "show", "gus")
    assert json.loads(out)["accounts"][0]["transport"] == "TLS"


def test_export_file_is_private(run: Run, tmp_path: Path) -> None:
    assert run("users", "add", "hal", "--no-password")[0] == 0
    out = tmp_path / "export.json"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o644)
    assert run("users", "export", "-o", str(out))[0] == 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert json.loads(out.read_text())["users"][0]["username"] == "hal"


def test_operator_defects_usernames_export_suffix_plurals_and_causes(
        run: Run, tmp_path: Path) -> None:
    """Issue 12 item 9: what a new operator hit in the users and db commands."""
    for bad in ("", " padded", "padded "):
        code, _, err = run("users", "add", bad, "--no-password")
        assert code == 1 and "empty or starts/ends with spaces" in err, (bad, err)
    assert run("users", "add", "ivy", "--no-password")[0] == 0
    out = tmp_path / "out.csv"
    assert run("users", "export", "-o", str(out))[0] == 0
    assert out.read_text().splitlines()[0].startswith("username")  # CSV, not JSON
    one = tmp_path / "one.csv"
    one.write_text("username,password\njoy,pw-for-joy\n")
    code, printed, _ = run("users", "import", str(one))
    assert code == 0 and "imported 1 user, 0 accounts" in printed
    # The real cause, not the phone user's "temporarily unavailable".
    broken = write_config(tmp_path / "broken.toml",
                          make_url("sqlite:///" + str(tmp_path / "no" / "such" / "dir.db")),
                          {"k1": KEY_1})
    code, _, err = run("db", "upgrade", cfg=broken)
    assert code == 1 and "temporarily unavailable" not in err and "sql:" in err, err
    assert str(tmp_path / "no" / "such" / "dir.db") in err  # the file SQLite could not open


def test_import_refuses_a_token_zoiper_could_not_append(run: Run, tmp_path: Path,
                                                        own_db: URL) -> None:
    # Zoiper appends the token to token_url verbatim: only URL-safe characters are accepted.
    data = {"users": [{"username": "amy", "accounts": [{
        "ident": "a", "sip_username": "a", "sip_password": "p", "domain": "d.example",
        "overrides": {"token": "tok en&x=1"}}]}]}
    path = tmp_path / "users.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = run("users", "import", str(path))
    assert code == 1 and "'token'" in err and "A-Z a-z 0-9 - . _ ~" in err, err
    assert "tok en" not in err
    assert run("users", "list")[1] == ""


def test_export_without_sip_passwords_round_trips_and_keeps_logins(
        run: Run, tmp_path: Path, own_db: URL, config: Path) -> None:
    """The export an operator makes without --with-sip-passwords re-imports with --replace:
    provisioning passwords travel as hashes, SIP passwords stay the stored ones."""
    path = tmp_path / "users.csv"
    path.write_text(CSV, encoding="utf-8")
    assert run("users", "import", str(path))[0] == 0
    assert run("users", "set-password", "dan", "--sip", "d2", stdin="sip-d2-changed\n")[0] == 0
    for fmt in ("json", "csv"):
        out = tmp_path / f"export.{fmt}"
        code, _, err = run("users", "export", "-o", str(out))
        assert code == 0, err
        assert "sip-d1" not in out.read_text() and "$argon2" in out.read_text()
        code, printed, err = run("users", "import", "--replace", str(out))
        assert code == 0, err
        assert "imported 2 users, 3 accounts" in printed
        assert "hashing" not in err  # hashes travel as they are: nothing to hash
        assert isinstance(_login(config, "dan", "pw-dan"), Identity), fmt
        assert _accounts(own_db, "dan") == {"d1": "sip-d1", "d2": "sip-d2-changed"}, fmt
        # eve is disabled (no accounts served): her row and account are there, still disabled.
        listed = {u["username"]: u for u in json.loads(run("users", "list", "--json")[1])}
        assert listed["eve"]["enabled"] is False
        engine = sa.create_engine(own_db, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(ACCOUNTS)).scalar() == 3
        engine.dispose()
    # Into a database without these users, the SIP passwords are nowhere: said, row and
    # column, and nothing is written.
    for name in ("dan", "eve"):
        assert run("users", "delete", name)[0] == 0
    for fmt, where in (("json", "export.json row 1 account 1, column 'sip_password'"),
                       ("csv", "export.csv row 2, column 'sip_password'")):
        code, _, err = run("users", "import", str(tmp_path / f"export.{fmt}"))
        assert code == 1 and where in err and "--with-sip-passwords" in err, err
        code, _, err = run("users", "import", "--replace", str(tmp_path / f"export.{fmt}"))
        assert code == 1 and where in err and "is required for a new account" in err, err
    assert run("users", "list")[1] == ""


def test_import_hashes_first_on_every_core_then_writes_in_one_short_transaction(
        run: Run, tmp_path: Path, own_db: URL, config: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    from zengine_sql import hashing

    order: list[str] = []
    real = hashing.hash_all

    def recorded(*args: object, **kwargs: object) -> list[str]:
        order.append("hashing")
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            order.append("hashed")

    def began(conn: sa.Connection) -> None:
        order.append("begin")

    monkeypatch.setattr(hashing, "hash_all", recorded)
    event.listen(sa.engine.Engine, "begin", began)
    try:
        rows = ["username,password"] + [f"user{n},pw-{n}" for n in range(6)]
        path = tmp_path / "many.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        code, printed, err = run("users", "import", str(path))
    finally:
        event.remove(sa.engine.Engine, "begin", began)
    assert code == 0, err
    assert "imported 6 users, 0 accounts" in printed
    # No transaction is open while the passwords are hashed; the import's opens after.
    start, end = order.index("hashing"), order.index("hashed")
    assert "begin" not in order[start:end] and "begin" in order[end:], order
    from zengine.passwords import cores

    workers = min(cores(), 6)
    # Progress on stderr although stderr is not a terminal here (pytest captures it).
    assert f"hashing 6 passwords on {workers} process" in err, err
    assert "importing users: hashed 6/6" in err and "importing users: wrote 6/6" in err
    assert "pw-3" not in err + printed
    assert isinstance(_login(config, "user5", "pw-5"), Identity)


def test_import_errors_name_the_csv_row_of_a_duplicate(run: Run, tmp_path: Path,
                                                      own_db: URL) -> None:
    assert run("users", "add", "zoe", "--no-password")[0] == 0
    path = tmp_path / "users.csv"
    header = "username,ident,sip_username,sip_password,domain\n"
    path.write_text(header + "amy,a1,1,p,d.example\nzed,z1,2,p,d.example\n"
                    "amy,a1,3,p,d.example\n", encoding="utf-8")
    code, _, err = run("users", "import", str(path))
    assert code == 1 and "users.csv row 4, column 'ident': 'a1' is already an account of " \
        "user 'amy'" in err, err
    path.write_text(header + "amy,a1,1,p,d.example\nzoe,z1,2,p,d.example\n", encoding="utf-8")
    code, _, err = run("users", "import", str(path))
    assert code == 1 and "users.csv row 3, user 'zoe': user 'zoe' already exists" in err, err
    assert "user 2" not in err and "user 1" not in err
    assert run("users", "list")[1].split() == ["zoe"] or "amy" not in run("users", "list")[1]
