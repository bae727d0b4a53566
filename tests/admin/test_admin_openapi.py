"""The OpenAPI document: served at /api/v1/openapi.json, committed as docs/api/openapi.json."""

from __future__ import annotations

import json

from tests.admin.conftest import AdminServer
from tests.conftest import ROOT
from zengine_admin.api import COMMON_ERRORS, OPS
from zengine_admin.openapi import document

COMMITTED = ROOT / "docs" / "api" / "openapi.json"


def test_committed_document_equals_the_served_one(admin_server: AdminServer) -> None:
    served = admin_server.client().call("GET", "/api/v1/openapi.json", key="")
    assert served.status == 200 and served.headers["content-type"] == "application/json"
    # Regenerate with: python -m zengine_admin.openapi > docs/api/openapi.json
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == served.json()


def test_document_is_openapi_3_1_and_covers_every_operation() -> None:
    doc = document(OPS, COMMON_ERRORS)
    assert doc["openapi"] == "3.1.0"
    operations = {(method.upper(), path) for path, item in doc["paths"].items()
                  for method in item}
    assert operations == {(op.method, "/api/v1" + op.path) for op in OPS}
    for item in doc["paths"].values():
        for entry in item.values():
            assert "401" in entry["responses"] and entry["security"] == [{"apiKey": []}]
    # Component names OpenAPI allows (a generic's "Page[X]" would not be).
    assert all(name.replace("_", "").replace("-", "").replace(".", "").isalnum()
               for name in doc["components"]["schemas"])
