"""Start a throw-away OpenLDAP ``slapd`` from a temporary directory.

Used by the LDAP tests' fixtures and by ``bench/ldap_logins.py``. Each instance has its own
config, database and ports on 127.0.0.1 (plain ``ldap://`` with StartTLS, and ``ldaps://``),
and a TLS certificate issued by a test CA (``trustme``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.ldap import schema

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")

ACL = """\
access to attrs=userPassword
    by self =xw
    by anonymous auth
    by * none
access to attrs=sipPassword,extensionAttribute1
    by self read
    by dn.exact="{service}" read
    by * none
access to *
    by * read
"""


def missing_reason() -> str | None:
    """Why slapd cannot run here, or ``None`` when it can."""
    for path in (SLAPD, SLAPADD, MODULE_DIR / "back_mdb.la"):
        if not path.exists():
            return f"{path} not found (apt-get install slapd ldap-utils)"
    for name in ("core", "cosine", "nis", "inetorgperson"):
        if not (SCHEMA_DIR / f"{name}.schema").exists():
            return f"{SCHEMA_DIR / name}.schema not found"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Slapd:
    """One slapd instance. ``start()``/``stop()`` may be called repeatedly (outage tests)."""

    root: Path
    ca: trustme.CA
    #: Names in the server certificate.
    cert_names: tuple[str, ...] = ("127.0.0.1", "localhost")
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        cert = self.ca.issue_cert(*self.cert_names)
        cert.private_key_pem.write_to_path(str(self.root / "server.key"))
        cert.cert_chain_pems[0].write_to_path(str(self.root / "server.pem"))
        (self.root / "zengine.schema").write_text(schema.ZENGINE_SCHEMA, encoding="utf-8")
        (self.root / "ad.schema").write_text(schema.AD_SCHEMA, encoding="utf-8")
        includes = [SCHEMA_DIR / f"{name}.schema" for name in
                    ("core", "cosine", "nis", "inetorgperson")]
        includes += [self.root / "zengine.schema", self.root / "ad.schema"]
        databases = []
        for suffix, service, name in ((schema.BASE, schema.SERVICE_DN, "example"),
                                      (schema.AD_BASE, schema.AD_SERVICE_DN, "ad")):
            (self.root / name).mkdir(exist_ok=True)
            databases.append(
                f'database mdb\nsuffix "{suffix}"\nrootdn "cn=admin,{suffix}"\n'
                f'directory {self.root / name}\nmaxsize 16777216\n'
                + ACL.format(service=service)
            )
        config = "\n".join(f"include {path}" for path in includes) + f"""
pidfile {self.root / "slapd.pid"}
argsfile {self.root / "slapd.args"}
modulepath {MODULE_DIR}
moduleload back_mdb
TLSCACertificateFile {self.ca_file}
TLSCertificateFile {self.root / "server.pem"}
TLSCertificateKeyFile {self.root / "server.key"}
""" + "\n".join(databases)
        (self.root / "slapd.conf").write_text(config, encoding="utf-8")
        for suffix, ldif in ((schema.BASE, schema.example_ldif()),
                             (schema.AD_BASE, schema.ad_ldif())):
            data = self.root / "data.ldif"
            data.write_text(ldif, encoding="utf-8")
            subprocess.run([str(SLAPADD), "-q", "-f", str(self.root / "slapd.conf"),
                            "-b", suffix, "-l", str(data)], check=True, capture_output=True)

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            return
        urls = f"{self.url}/ {self.ldaps_url}/"
        # -d 0: stay in the foreground (so the fixture owns the process) without debug output.
        self.process = subprocess.Popen(
            [str(SLAPD), "-h", urls, "-f", str(self.root / "slapd.conf"), "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                self.process = None
                raise RuntimeError(f"slapd exited: {err.decode(errors='replace')[-2000:]}")
            if all(_listening(port) for port in (self.port, self.tls_port)):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"slapd did not listen on {self.port}/{self.tls_port} in {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        # The ports must be free again before a restart can bind them.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                _listening(port) for port in (self.port, self.tls_port)):
            time.sleep(0.02)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
