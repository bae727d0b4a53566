"""Schemathesis against the OpenAPI document the real server serves: every operation, valid
and invalid inputs; no 5xx, every response conforms to the document (status, content type,
schema, headers). Bounded: a few examples per operation and mode, so it takes seconds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.admin.conftest import AdminServer, start
from zengine_admin.api import OPS

#: Examples per operation and generation mode; enough to reach every branch of the input
#: validation, small enough for the whole module to stay well under a minute.
MAX_EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    # A low failure floor: the unauthenticated probes schemathesis sends are held to it.
    yield from start(tmp_path_factory.mktemp("fuzz"), server={}, failure_floor_ms=5)


@pytest.fixture(scope="module")
def api_schema(fuzzed: AdminServer) -> Any:
    """The document as the server serves it (not the committed copy: that one has a test of
    its own)."""
    return schemathesis.openapi.from_url(fuzzed.server.base + "/api/v1/openapi.json")


# Parametrised from the operation table, so each operation and mode is a test of its own.
# (Schemathesis's own ``from_fixture`` parametrisation does not run on pytest 9.)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
@pytest.mark.parametrize("operation_id", [op.operation_id for op in OPS])
def test_api_conforms_to_its_openapi_document(operation_id: str, mode: GenerationMode,
                                              api_schema: Any, fuzzed: AdminServer) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    headers = {"Authorization": f"Bearer {fuzzed.keys['admin']}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        # Every check but "schema-valid data is accepted": the API refuses, with a 422 naming
        # the field, input the schema cannot describe as invalid (an ``overrides`` key no
        # catalogue field has, a profile the config does not define, a cursor it never
        # handed out). Everything else holds: no 5xx, documented statuses, content types,
        # headers and bodies, and schema-violating input refused.
        case.call_and_validate(headers=headers, timeout=15,
                               excluded_checks=[positive_data_acceptance])

    check()
