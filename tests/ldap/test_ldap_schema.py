"""The local schema docs/backends/ldap.md shows (contrib/ldap/) loads into a real slapd: the
slapd.conf file into every test slapd (tests/ldap/slapd.py), the LDIF with ``ldapadd`` into a
slapd that keeps its configuration in cn=config, as Debian's does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import ldap3
import pytest

from tests.conftest import ROOT, service_missing
from tests.ldap import schema
from tests.ldap.slapd import MODULE_DIR, SCHEMA_DIR, SLAPD, Slapd, _listening, free_port

pytestmark = pytest.mark.ldap
CONTRIB = ROOT / "contrib" / "ldap"
DOC = (ROOT / "docs" / "backends" / "ldap.md").read_text(encoding="utf-8")
SLAPTEST, LDAPADD = Path("/usr/sbin/slaptest"), shutil.which("ldapadd") or "/usr/bin/ldapadd"


def _add(conn: ldap3.Connection, dn: str, classes: list[str], attributes: dict[str, str]) -> bool:
    added: bool = conn.add(dn, classes, attributes)  # type: ignore[no-untyped-call]  # types-ldap3
    return added


def _definitions(text: str) -> list[str]:
    """The attribute and class definitions, whitespace-normalised, in either syntax."""
    found = []
    for match in re.finditer(r"\(\s*1\.3\.6\.1\.4\.1\.4203\.666\.11\.99\.", text):
        depth, index = 0, match.start()
        while True:
            depth += {"(": 1, ")": -1}.get(text[index], 0)
            index += 1
            if depth == 0:
                break
        found.append(" ".join(text[match.start():index].split()))
    return found


def test_the_doc_shows_both_files_and_they_define_the_same() -> None:
    ldif = (CONTRIB / "zengine-sip.ldif").read_text(encoding="utf-8")
    conf = (CONTRIB / "zengine-sip.schema").read_text(encoding="utf-8")
    assert _definitions(ldif) == _definitions(conf) and len(_definitions(conf)) == 3
    blocks = re.findall(r"```ldif\n(.*?)```", DOC, re.DOTALL)
    assert any(_definitions(block) == _definitions(ldif) for block in blocks), \
        "docs/backends/ldap.md does not show contrib/ldap/zengine-sip.ldif"
    assert schema.ZENGINE_SCHEMA == conf  # what every test slapd loads


def test_test_slapd_serves_sip_passwords_of_the_shipped_schema(slapd: Slapd) -> None:
    conn = ldap3.Connection(ldap3.Server(slapd.url), schema.SERVICE_DN,
                            schema.SERVICE_PASSWORD, auto_bind=True)
    try:
        conn.search(f"ou=people,{schema.BASE}", "(&(objectClass=sipUser)(uid=alice))",
                    attributes=["sipPassword"])
        assert [e.sipPassword.value for e in conn.entries] == ["alice-sip-secret"]
    finally:
        conn.unbind()


def test_ldif_loads_into_a_cn_config_slapd_with_ldapadd(tmp_path: Path) -> None:
    for tool in (SLAPD, SLAPTEST, Path(LDAPADD)):
        if not tool.exists():
            service_missing(f"{tool} not found (apt-get install slapd ldap-utils)")
    base, password = "dc=example,dc=com", "config-secret"
    (tmp_path / "db").mkdir()
    (tmp_path / "slapd.d").mkdir()
    includes = "\n".join(f"include {SCHEMA_DIR / name}.schema"
                         for name in ("core", "cosine", "nis", "inetorgperson"))
    # The config database only (slaptest cannot open an empty mdb database to convert it);
    # the data database is added over LDAP below, as on a cn=config server.
    (tmp_path / "slapd.conf").write_text(f"""{includes}
pidfile {tmp_path / "slapd.pid"}
modulepath {MODULE_DIR}
moduleload back_mdb
database config
rootdn "cn=admin,cn=config"
rootpw {password}
""", encoding="utf-8")
    # A cn=config directory, as Debian's slapd keeps its configuration.
    subprocess.run([str(SLAPTEST), "-f", str(tmp_path / "slapd.conf"), "-F",
                    str(tmp_path / "slapd.d")], check=True, capture_output=True, timeout=60)
    port = free_port()
    url = f"ldap://127.0.0.1:{port}"
    proc = subprocess.Popen([str(SLAPD), "-h", f"{url}/", "-F", str(tmp_path / "slapd.d"),
                             "-d", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(500):
            if _listening(port) or proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"], check=False)
        if proc.poll() is not None:
            pytest.fail(f"slapd did not start: {proc.communicate()[1].decode(errors='replace')}")
        assert _listening(port), "slapd did not listen"
        # The documented command, with a simple bind instead of ldapi's EXTERNAL (which
        # needs root and the system's socket).
        added = subprocess.run([LDAPADD, "-x", "-H", url, "-D", "cn=admin,cn=config", "-w",
                                password, "-f", str(CONTRIB / "zengine-sip.ldif")],
                               capture_output=True, text=True, timeout=60, check=False)
        assert added.returncode == 0, added.stderr
        admin = ldap3.Connection(ldap3.Server(url), "cn=admin,cn=config", password,
                                 auto_bind=True)
        try:
            assert _add(admin, "olcDatabase=mdb,cn=config", ["olcDatabaseConfig", "olcMdbConfig"],
                        {"olcDatabase": "mdb", "olcSuffix": base, "olcRootDN": f"cn=admin,{base}",
                         "olcRootPW": password, "olcDbDirectory": str(tmp_path / "db"),
                         "olcDbMaxSize": "16777216"}), admin.result
        finally:
            admin.unbind()
        conn = ldap3.Connection(ldap3.Server(url), f"cn=admin,{base}", password,
                                auto_bind=True)
        try:
            assert _add(conn, base, ["dcObject", "organization"], {"dc": "example", "o": "Ex"})
            dn = f"uid=alice,{base}"
            assert _add(conn, dn, ["inetOrgPerson", "sipUser"],
                        {"uid": "alice", "cn": "Alice", "sn": "Example",
                         "sipPassword": "s1p"}), conn.result
            assert _add(conn, f"cn=1001,{base}", ["sipAccount"],
                        {"cn": "1001", "sipPassword": "acc", "owner": dn}), conn.result
            conn.search(base, "(objectClass=sipUser)", attributes=["sipPassword"])
            assert [e.sipPassword.value for e in conn.entries] == ["s1p"]
        finally:
            conn.unbind()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
