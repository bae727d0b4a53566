"""The real server with the console on: static users, the SQL own schema (SQLite), tokens,
the admin API's key store, the guard (low lockout threshold), the audit store; API keys made
through the key store, as ``zengine apikeys create`` makes them."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.admin.conftest import make_key, write_config
from tests.serverproc import Server, running_server

SESSION_KEY = "console-test-session-key-0123456789abcdef"
COOKIE = "__Secure-zengine-console"
ALICE_PASSWORD = "wonderland"


@dataclass
class ConsoleServer:
    server: Server
    config: Path
    keys: dict[str, str]

    def browser(self) -> Browser:
        return Browser(self.server.base)

    def login(self, username: str, password: str) -> httpx.Response:
        return httpx.get(f"{self.server.base}/id.php",
                         params={"username": username, "password": password})


@dataclass
class Browser:
    """An HTTP client that keeps the console's cookie by hand: the cookie is Secure, and a
    cookie jar would not send it back over http://127.0.0.1 (Chromium does, for localhost)."""

    base: str
    cookie: str | None = None
    seen: list[str] = field(default_factory=list)

    def _headers(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for header in response.headers.get_list("set-cookie"):
            self.seen.append(header)
            match = re.match(rf"{COOKIE}=([^;]*)", header)
            if match:
                self.cookie = match.group(1) or None
        return response

    def get(self, path: str, **params: str) -> httpx.Response:
        # No params argument at all for a path that carries its own query (httpx would
        # replace it with an empty one).
        return self._keep(httpx.get(self.base + path, params=params or None,
                                    headers=self._headers()))

    def post(self, path: str, form: dict[str, str]) -> httpx.Response:
        return self._keep(httpx.post(self.base + path, data=form, headers=self._headers()))

    def csrf(self, path: str = "/console", **params: str) -> str:
        return csrf_of(self.get(path, **params).text)

    def sign_in(self, key: str) -> httpx.Response:
        return self.post("/console/signin", {"csrf": self.csrf(), "api_key": key})

    def session(self) -> dict[str, object]:
        """What the signed cookie carries (readable by anyone holding it: no secret)."""
        assert self.cookie is not None
        payload = self.cookie.split(".")[0]
        return dict(json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))))


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def start(tmp: Path) -> Iterator[ConsoleServer]:
    config = write_config(tmp, guard={"lockout_threshold": 3})
    with config.open("a", encoding="utf-8") as out:
        out.write(f"""
[plugins.console]
enabled = true
session_key = "{SESSION_KEY}"
[plugins.audit]
store = "sqlite"
sqlite_path = "{tmp / 'audit.db'}"
flush_interval = 0.05
""")
    keys = {"admin": make_key(config, "helpdesk", "write"),
            "reader": make_key(config, "reader", "read")}
    with running_server(config, tmp) as server:
        yield ConsoleServer(server, config, keys)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    yield from start(tmp_path_factory.mktemp("console"))
