"""Serving: the engine named by ``[server] engine`` runs the app with the same keys.

Every engine binds ``host``/``port``, runs ``workers`` processes, serves TLS from
``tls_certificate``/``tls_key`` (``tls_client_ca``, ``tls_http2``: uvicorn has no HTTP/2), and
writes an access log that never carries the query string (it holds the password).
``hypercorn`` is the default and always installed; ``granian`` and ``uvicorn`` come with
``pip install 'zengine[fast]'``. Each engine lives in its own module here, imported only when
chosen.
"""

from __future__ import annotations

import importlib
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from zengine.errors import ConfigError
from zengine.log import configure_logging
from zengine.pidfile import held
from zengine.settings import Settings
from zengine.settingsmodels import server_option

#: Import path every worker process loads (it builds the app from ``$ZENGINE_CONFIG``).
WORKER_APP = "zengine.asgi:app"


@dataclass(frozen=True)
class Bind:
    """Where and how to serve, after the command line has overridden the settings."""

    host: str
    port: int
    workers: int

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Engine(Protocol):
    def check_installed(self) -> None: ...

    def configure_worker(self, settings: Settings) -> None: ...

    def run(self, settings: Settings, bind: Bind) -> int: ...


def load_engine(name: str) -> Engine:
    """The engine module for ``name``; a missing optional engine is a configuration error."""
    try:
        module = importlib.import_module(f"zengine.server.{name}_engine")
        module.check_installed()
    except ImportError as exc:
        raise ConfigError(
            f"[server] engine = {name!r} needs a package that is not installed ({exc.name}); "
            "install it with: pip install 'zengine[fast]'") from None
    engine: Engine = module
    return engine


def serve(settings: Settings, *, config_path: str | None, host: str | None = None,
          port: int | None = None, workers: int | None = None,
          pid_file: Path | None = None) -> int:
    """Serve until stopped; ``pid_file`` (else ``[server] pid_file``) holds the process id."""
    configure_logging(settings.logging)
    bind = Bind(host=host or settings.server.host,
                port=settings.server.port if port is None else server_option("port", port),
                workers=settings.server.workers if workers is None
                else server_option("workers", workers))
    if settings.server.tls_http2 and settings.server.engine == "uvicorn":
        # uvicorn has no HTTP/2 at all; HTTP/1.1 in its place would be a silent downgrade.
        raise ConfigError("[server] tls_http2 = true: engine 'uvicorn' speaks HTTP/1.1 only; "
                          "set tls_http2 = false, or engine = 'hypercorn' or 'granian' for "
                          "HTTP/2")
    check_tls(settings)
    engine = load_engine(settings.server.engine)
    check_bindable(bind)
    if config_path:
        # Worker processes build their own app from the same config file.
        os.environ["ZENGINE_CONFIG"] = os.path.abspath(config_path)
    # ... and see the worker count ``--workers`` chose (the metrics plugin's multiprocess
    # mode depends on it).
    os.environ["ZENGINE_SERVER__WORKERS"] = str(bind.workers)
    if pid_file is None and settings.server.pid_file is not None:
        pid_file = settings.resolve_path(settings.server.pid_file)
    with held(pid_file):
        return engine.run(settings, bind)


#: TLS 1.2 suites on every engine: granian's own (rustls offers these and nothing else), given
#: to hypercorn (whose default lacked ChaCha20) and uvicorn (whose default, Python's, also
#: took CBC and DHE suites). TLS 1.3 has its own suites, alike everywhere.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class TlsFiles:
    """``[server] tls_certificate``, ``tls_key`` and ``tls_client_ca``, relative to the config
    file: what every engine's TLS options and :func:`check_tls` are made of."""

    certificate: Path
    key: Path
    #: Set: every client must present a certificate it signed.
    client_ca: Path | None


def tls_files(settings: Settings) -> TlsFiles | None:
    """The TLS files, or ``None`` for plain HTTP (no certificate and key)."""
    server = settings.server
    if server.tls_certificate is None or server.tls_key is None:
        return None
    return TlsFiles(settings.resolve_path(server.tls_certificate),
                    settings.resolve_path(server.tls_key),
                    None if server.tls_client_ca is None
                    else settings.resolve_path(server.tls_client_ca))


def check_tls(settings: Settings) -> None:
    """Load the certificate, key and client CA once here, so a wrong path or a key that does
    not match is one line naming the file, not a traceback from inside the engine."""
    files = tls_files(settings)
    if files is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        # Asked only for a key with a pass phrase, which no engine is given: without this,
        # OpenSSL prompts on the terminal and the server waits there.
        context.load_cert_chain(files.certificate, files.key, password=_no_pass_phrase)
        if files.client_ca is not None:
            context.load_verify_locations(files.client_ca)
    except _PassPhrase:
        raise ConfigError(f"[server] TLS: key {files.key} has a pass phrase: zengine needs it "
                          "unencrypted (e.g. openssl pkey -in KEY -out KEY.plain), mode "
                          "0600") from None
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"[server] TLS: cannot load certificate {files.certificate}, key "
                          f"{files.key}"
                          + (f" or client CA {files.client_ca}"
                             if files.client_ca is not None else "")
                          + f": {reason}") from None


class _PassPhrase(Exception):
    """The TLS key is encrypted."""


def _no_pass_phrase() -> bytes:
    raise _PassPhrase


def check_bindable(bind: Bind) -> None:
    """Fail with one line, before any app starts or logs ``zengine.started``, when the address
    cannot be listened on (a second server on a busy port, a typo in ``host``)."""
    try:
        infos = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {bind.address}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the servers do: a port left in TIME_WAIT by the previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {bind.address}: {exc.strerror} (is another "
                              "server running there? choose --port or stop it)") from None


def configure_worker(settings: Settings) -> None:
    """Logging for one worker process: zengine's redacting handler plus the engine's fixes."""
    configure_logging(settings.logging)
    load_engine(settings.server.engine).configure_worker(settings)
