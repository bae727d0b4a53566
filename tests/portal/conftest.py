"""The real server (``zengine serve``) with the portal and the tokens plugin turned on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.serverproc import Server, running_server

SESSION_KEY = "portal-test-session-key-0123456789abcdef"
ACCENT = "#7b1fa2"
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
        b'<circle cx="5" cy="5" r="4" fill="#fff"/></svg>')


def portal_env(tmp: Path) -> dict[str, str]:
    """The example config plus the portal, set from the environment as an operator might."""
    logo = tmp / "logo.svg"
    logo.write_bytes(LOGO)
    return {
        "ZENGINE_SERVER__PUBLIC_URL": "https://prov.example.com",
        "ZENGINE_PLUGINS__TOKENS__SQLITE_PATH": str(tmp / "tokens.db"),
        "ZENGINE_PLUGINS__TOKENS__PROVIDER_ID": "zengine-test",
        "ZENGINE_PLUGINS__PORTAL__ENABLED": "true",
        "ZENGINE_PLUGINS__PORTAL__SESSION_KEY": SESSION_KEY,
        "ZENGINE_PLUGINS__PORTAL__TITLE": "Example Telecom",
        "ZENGINE_PLUGINS__PORTAL__ACCENT_COLOR": ACCENT,
        "ZENGINE_PLUGINS__PORTAL__LOGO": str(logo),
    }


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("portal")
    with running_server(EXAMPLE_CONFIG, tmp, env=portal_env(tmp)) as server:
        yield server
