"""Golden documents per family and version, served over HTTP by the real plugins.

Each golden is byte-compared *and* checked structurally against the catalogue for its family
and served version. Regenerate after an intended change with ``ZENGINE_UPDATE_GOLDEN=1``, and
review the diff.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field

import pytest
from lxml import etree
from starlette.testclient import TestClient

from tests.clients.conftest import GOLDEN, PASSWORD
from zengine.models import Version
from zengine.testing import check_structure
from zengine_zoiper import desktop, legacy

UPDATE = os.environ.get("ZENGINE_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    served: Version
    path: str = "/id.php"
    params: dict[str, str] = field(default_factory=dict)
    basic: bool = False

    @property
    def golden(self) -> str:
        return f"{self.family}/{self.name}.xml"


def _mobile(version: str, served: str | None = None) -> Case:
    return Case("mobile", version, Version.parse(served or version),
                params={"username": "alice", "password": PASSWORD, "version": version})


CASES = [
    Case("legacy", "1.0", legacy.VERSION,
         params={"username": "alice", "password": PASSWORD, "version": "1.0"}),
    _mobile("1.5"),
    _mobile("1.8"),
    _mobile("1.10"),
    _mobile("1.12"),
    _mobile("1.14"),
    _mobile("1.99", served="1.14"),
    Case("mobile", "no-version", Version(1, 14),
         params={"username": "alice", "password": PASSWORD}),
    # Zoiper5 substitutes only [user] and [pass]; the desktop path selects the family.
    Case("desktop", "query", desktop.VERSION, path="/desktop",
         params={"user": "alice", "pass": PASSWORD}),
    Case("desktop", "basic", desktop.VERSION, path="/desktop", basic=True),
]


def fetch(client: TestClient, case: Case) -> bytes:
    headers = {}
    if case.basic:
        token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    response = client.get(case.path, params=case.params, headers=headers)
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.golden)
def test_golden_document(client: TestClient, case: Case) -> None:
    body = fetch(client, case)
    path = GOLDEN / case.golden
    if UPDATE:
        path.write_bytes(body)
    assert path.exists(), f"missing golden {path}; run with ZENGINE_UPDATE_GOLDEN=1"
    assert body == path.read_bytes()
    assert check_structure(body, case.family, case.served) == []
    root = etree.fromstring(body)
    prov = root.find("prov_version")
    if case.family == "mobile":
        assert prov is not None and prov.text == str(case.served)
    else:
        assert prov is None


def test_unknown_newer_and_absent_versions_get_the_newest_document(client: TestClient) -> None:
    newest = (GOLDEN / "mobile" / "1.14.xml").read_bytes()
    assert (GOLDEN / "mobile" / "1.99.xml").read_bytes() == newest
    assert (GOLDEN / "mobile" / "no-version.xml").read_bytes() == newest


def test_basic_and_query_credentials_give_the_same_desktop_document() -> None:
    assert (GOLDEN / "desktop" / "basic.xml").read_bytes() == (
        GOLDEN / "desktop" / "query.xml").read_bytes()


def test_goldens_differ_between_versions() -> None:
    # A transform that silently did nothing would make neighbouring goldens identical.
    bodies = [(GOLDEN / "mobile" / f"{v}.xml").read_bytes()
              for v in ("1.5", "1.8", "1.10", "1.12", "1.14")]
    assert len(set(bodies)) == len(bodies)
