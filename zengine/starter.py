"""``zengine init DIR``: a starter deployment an operator can serve at once.

Writes ``zengine.toml`` (absolute paths only, so it works wherever it is copied from), a users
file with one user, and a generated portal session key; every file 0600, the directory 0700.
Values go through tomli-w, never through string formatting, so no name or path can break the
TOML.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from zengine.errors import ConfigError
from zengine.passwords import Passwords
from zengine.settingsmodels import server_option

CONFIG_NAME = "zengine.toml"
USERS_NAME = "users.toml"
SESSION_KEY_NAME = "portal-session.key"


@dataclass(frozen=True)
class Starter:
    directory: Path
    username: str
    password: str
    sip_domain: str
    port: int = 8080

    @property
    def config(self) -> Path:
        return self.directory / CONFIG_NAME


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` 0600 from the start (never briefly world-readable); never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        # Ours (O_EXCL): a half-written file would make the next init refuse the directory.
        path.unlink(missing_ok=True)
        raise


def config_text(starter: Starter) -> str:
    directory = starter.directory
    parts = [
        "# Written by `zengine init`. Every key is explained in docs/configuration.md.\n"
        "# Serve it with: zengine serve --config " + str(starter.config) + "\n",
        tomli_w.dumps({"default_profile": "default"}),
        "\n# Behind the nginx recipe (contrib/nginx/zengine.conf) set trusted_proxies =\n"
        '# ["127.0.0.1"] so that logs and the login guard see the real client address.\n',
        tomli_w.dumps({"server": {"host": "127.0.0.1", "port": starter.port,
                                  "paths": ["/id.php", "/provision"]}}),
        "\n", tomli_w.dumps({"auth": {"chain": ["static"]}}),
        "\n# Account fields every account gets; see docs/configuration.md for the catalogue.\n",
        tomli_w.dumps({"profiles": {"default": {"SIP_transport_type": "UDP"}}}),
        "\n# Users, their password hashes and SIP accounts (add more with "
        "`zengine hash-password`).\n",
        tomli_w.dumps({"plugins": {"static": {"users_file": str(directory / USERS_NAME)}}}),
        "\n# The self-service page is off; its session key is ready for when you turn it on.\n",
        tomli_w.dumps({"plugins": {"portal": {
            "enabled": False, "session_key_file": str(directory / SESSION_KEY_NAME)}}}),
    ]
    return "".join(parts)


def users_text(starter: Starter, passwords: Passwords) -> str:
    account = {"ident": starter.username, "sip_username": starter.username,
               # Generated: the phone receives it in the document, nobody has to type it.
               "sip_password": secrets.token_urlsafe(18), "domain": starter.sip_domain}
    user = {"password_hash": passwords.hash(starter.password), "accounts": [account]}
    return ("# Written by `zengine init`: keep it 0600, it holds SIP passwords.\n"
            + tomli_w.dumps({"users": {starter.username: user}}))


def init(starter: Starter, passwords: Passwords) -> list[Path]:
    """Write the starter files; refuses to touch a directory that already holds one."""
    directory = starter.directory
    if not directory.is_absolute():
        raise ConfigError(f"init: {directory} must be an absolute path")
    names = (CONFIG_NAME, USERS_NAME, SESSION_KEY_NAME)
    existing = [directory / name for name in names if (directory / name).exists()]
    if existing:
        raise ConfigError(f"init: {', '.join(map(str, existing))} already exists; "
                          "choose an empty directory (nothing was written)")
    if not starter.username or starter.username != starter.username.strip():
        raise ConfigError("init: the username must not be empty or start/end with spaces")
    # What serve would refuse is refused here, before anything is written.
    if not starter.sip_domain.strip():
        raise ConfigError("init: the SIP domain must not be empty")
    try:
        server_option("port", starter.port)
    except ConfigError as exc:
        raise ConfigError(f"init: {exc}") from None
    users = users_text(starter, passwords)
    try:
        # Encoded before anything is written: a non-UTF-8 byte in an argument (a lone
        # surrogate once decoded) cannot go into a TOML file.
        contents = {name: text.encode("utf-8") for name, text in (
            (USERS_NAME, users), (SESSION_KEY_NAME, secrets.token_urlsafe(48) + "\n"),
            (CONFIG_NAME, config_text(starter)))}
    except UnicodeEncodeError:
        raise ConfigError("init: the directory, --username and --sip-domain must be valid "
                          "UTF-8 (nothing was written)") from None
    written: list[Path] = []
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, data in contents.items():
            _write_private(directory / name, data)
            written.append(directory / name)
    except OSError as exc:
        # A directory that cannot be made or written (a typo, no permission, a full disk):
        # one line naming it, and no half-written starter left behind.
        for path in written:
            path.unlink(missing_ok=True)
        raise ConfigError(f"init: cannot write {exc.filename or directory}: "
                          f"{exc.strerror}") from None
    return written
